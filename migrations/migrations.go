// Package migrations holds the SQL schema of the app as numbered up/down
// files, embedded so that a deployed binary carries its own schema.
package migrations

import "embed"

// FS holds the NNN_name.up.sql and NNN_name.down.sql files.
//
//go:embed *.sql
var FS embed.FS
