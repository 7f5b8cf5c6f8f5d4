// Package migrations holds the SQL schema of the app as numbered up/down
// files, embedded so that a deployed binary carries its own schema. There
// is one set per dialect, side by side and numbered alike: sqlite/ (the
// original files, never renamed, since existing data dirs record their
// names as applied) and postgres/, which says the same in PostgreSQL
// (identity columns for AUTOINCREMENT, regular expressions for GLOB,
// strpos/chr for instr/char, timestamptz for TIMESTAMP).
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// For returns the NNN_name.up.sql and NNN_name.down.sql files of a
// dialect, "sqlite" or "postgres".
func For(dialect string) fs.FS {
	sub, err := fs.Sub(files, dialect)
	if err != nil {
		panic(err) // a fixed, embedded directory name
	}
	return sub
}
