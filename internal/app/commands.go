package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/platform/database"
)

// runMigrate applies the migrations and the reference data.
func runMigrate(ctx context.Context, cfg config, stdout io.Writer) error {
	path := filepath.Join(cfg.DataDir, database.FileName)
	if cfg.DatabaseURL != "" {
		path = database.RedactURL(cfg.DatabaseURL)
	} else if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("OTJ_DATA_DIR %s: %w", cfg.DataDir, err)
	}
	db, err := openDatabase(ctx, cfg, false, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := database.Migrate(ctx, db, filepath.Join(cfg.DataDir, database.FileName))
	if err != nil {
		return err
	}
	if err := activity.NewStore(db).SeedReference(ctx); err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "database %s is up to date\n", path)
	} else {
		fmt.Fprintf(stdout, "database %s: applied %s\n", path, strings.Join(applied, ", "))
	}
	return nil
}

// demoOptions are app demo's flags.
type demoOptions struct {
	email, spec string
	n           int
	seed        int64
}

// demoFlags is app demo's flag set, read into o.
func demoFlags(o *demoOptions, getenv func(string) string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.email, "email", getenv("DEV_AUTO_LOGIN_EMAIL"), "the user to create or refill (default $DEV_AUTO_LOGIN_EMAIL)")
	fs.IntVar(&o.n, "activities", 200, "how many activities to create")
	fs.StringVar(&o.spec, "spec", "ST0787", "the user's apprenticeship standard (ST0787 or ST0763)")
	fs.Int64Var(&o.seed, "seed", 1, "random seed; the same seed gives the same data")
	return fs
}

// runDemo fills a user's activity log with realistic data.
func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o demoOptions
	fs := demoFlags(&o, getenv, stderr)
	email, n, spec, seed := &o.email, &o.n, &o.spec, &o.seed
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo: unexpected argument %q", fs.Arg(0))
	}
	if *email == "" || !strings.Contains(*email, "@") {
		return errors.New("demo: --email: give the user's email address, e.g. --email you@example.org")
	}
	if *n < 0 {
		return errors.New("demo: --activities: must be 0 or more")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	if err := runMigrate(ctx, cfg, io.Discard); err != nil {
		return err
	}
	db, err := openDatabase(ctx, cfg, false, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := activity.Fill(ctx, db, activity.DemoOptions{Email: *email, Activities: *n, Spec: *spec, Seed: *seed, Progress: stderr})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(stdout, "user %s (id %d) now has %d activities on %s\n", u.Email, u.ID, *n, u.SelectedSpec)
	return nil
}
