package app

import (
	"context"

	"petrel/internal/mail/junk"
	"petrel/internal/server/imapd"
)

// junkFilter builds the built-in junk classifier from [junk] over the store's counts
// (store.JunkStats); nil when it is off or the store keeps no counts.
func (a *App) junkFilter() *junk.Filter {
	if !a.cfg.Junk.Enabled {
		return nil
	}
	st, ok := a.store.(junk.Store)
	if !ok {
		a.log.Warn("junk classifier off: the store keeps no junk counts")
		return nil
	}
	return &junk.Filter{Store: st, Threshold: a.cfg.Junk.Threshold}
}

// junkTrainer is what IMAP sessions call when a user files messages into or out of Junk.
type junkTrainer struct{ f *junk.Filter }

var _ imapd.JunkTrainer = junkTrainer{}

func (t junkTrainer) TrainJunk(ctx context.Context, accountID int64, blobIDs []int64, isJunk bool) error {
	_, err := t.f.TrainBlobs(ctx, accountID, blobIDs, isJunk)
	return err
}
