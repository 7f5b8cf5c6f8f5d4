package app

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"

	"github.com/otjhelper/otj/modules/account"
	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/digest"
)

// honourErasures removes erased users' digests from this process's
// outbox: at once when an erasure is announced, and by sweeps at start
// and now and then for the ones announced while it was down.
func honourErasures(ctx context.Context, cfg config, be *backend, log *slog.Logger) error {
	store := activity.NewStore(be.DB)
	return account.HonourErasures(ctx, account.HonourConfig{
		NC: be.NC, Copies: digest.Outbox{Dir: filepath.Join(cfg.DataDir, "outbox")}, Logger: log.With("service", "outbox-erasures"),
		Exists: func(ctx context.Context, userID int64) (bool, error) {
			_, err := store.UserByID(ctx, userID)
			if errors.Is(err, activity.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
	})
}
