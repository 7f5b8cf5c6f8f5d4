// Package cli holds what the app's subcommands share in reading their
// flags and printing their answers, so that app tasks, app projections
// and app bench take arguments and print JSON the same way.
package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
)

// WriteJSON prints v indented, as every --json output of the app.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// NewFlagSet returns a flag set for app name that reports errors rather
// than exiting, with a usage line for -h; args is what the synopsis shows
// between the name and the flags, e.g. " ID".
func NewFlagSet(name, args string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: app %s%s [flags]\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// ParseFlags parses flags wherever they stand among the arguments (the
// flag package stops at the first non-flag, and operators type
// "show ID --json" as often as "show --json ID"), returning the others.
func ParseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// FlagError is the error for a command whose flags did not parse (the
// flag package has printed which, and the usage) or whose arguments are
// wrong; synopsis is the command's usage after "app ". -h is not an
// error: it returns nil.
func FlagError(err error, fs *flag.FlagSet, synopsis string, pos []string) error {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", fs.Name(), err)
	case len(pos) == 0:
		return fmt.Errorf("%s: missing argument; usage: app %s", fs.Name(), synopsis)
	}
	return fmt.Errorf("%s: unexpected argument %q; usage: app %s", fs.Name(), pos[len(pos)-1], synopsis)
}
