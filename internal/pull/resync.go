package pull

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"petrel/internal/store"
)

// resync recognizes the messages pulled before whose unique-ids the outside server changed,
// by their fingerprints, so that a server that renamed its messages does not make the
// account receive them again: an IMAP folder whose UIDVALIDITY changed (RFC 9051 §2.3.1.1:
// its UIDs no longer name the messages they named; a rebuilt index, a move to another
// server, a changed folder) or a POP3 server whose UIDLs changed (a migration). Each
// recognized message takes over the recorded unique-id of one pulled before
// (store.PullState.RekeyPulled, one commit), so a resync cut short goes on where it stopped,
// and no record recognizes two messages.
//
// A record made before fingerprints were kept has none; its fingerprint is computed from
// the account's own copy of the message (store.PulledCopies, storedDigest) and stored, a
// one-time backfill. Only a record whose copies are all gone (expunged by the user, or
// discarded by Sieve) is left unrecognizable: its message comes again, which errs toward a
// duplicate rather than a loss.
type resync struct {
	r     *run
	byFP  map[string][]string // fingerprint -> earlier unique-ids with it
	event string              // what changed, for the log and the notice
	noFP  []string            // earlier unique-ids without a fingerprint and without a copy here
	at    time.Time
	noTOP bool // POP3: the server refused TOP; the whole message is looked at instead
	// guess: the change is inferred (POP3 UIDLs), not stated by the server (UIDVALIDITY);
	// a guess that recognized nothing was mail deleted and come, and makes no notice.
	guess bool
}

// newResync starts a resync against the earlier unique-ids (recorded, but naming no message
// on the server now) of the run's source. kind is the log's word for the change, event
// what changed, for the log and the notice.
func (r *run) newResync(ctx context.Context, earlier []string, kind, event string) (*resync, error) {
	fps, err := r.p.st.PulledFingerprints(ctx, r.src.ID)
	if err != nil {
		return nil, err
	}
	rs := &resync{r: r, byFP: map[string][]string{}, event: event, at: r.p.o.Now()}
	slices.Sort(earlier)
	var missing []string
	for _, uid := range earlier {
		if fp := fps[uid]; fp != "" {
			rs.byFP[fp] = append(rs.byFP[fp], uid)
		} else {
			missing = append(missing, uid)
		}
	}
	backfilled, err := rs.backfill(ctx, missing)
	if err != nil {
		return nil, err
	}
	r.p.o.Log.Warn("pull: "+kind+": messages pulled before are recognized by their header, not pulled again",
		"source", r.src.ID, "change", event, "pulled_before", len(earlier), "fingerprints_from_local_copies", backfilled,
		"unrecognizable", len(rs.noFP))
	return rs, nil
}

// backfill computes the fingerprints of the records missing them from the account's copies
// of their messages and stores them, so that they are computed once. It returns how many it
// found; the rest go to noFP.
func (rs *resync) backfill(ctx context.Context, missing []string) (int, error) {
	if len(missing) == 0 {
		return 0, nil
	}
	st := rs.r.p.st
	blobs, err := st.PulledBlobs(ctx, rs.r.src.ID, missing)
	if err != nil {
		return 0, err
	}
	var found []store.PulledMessage
	for _, uid := range missing {
		var fps []string
		for _, id := range blobs[uid] {
			fp, err := rs.r.copyDigest(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue // expunged since
			}
			if err != nil {
				return 0, err
			}
			if !slices.Contains(fps, fp) {
				fps = append(fps, fp)
			}
		}
		if len(fps) == 0 {
			rs.noFP = append(rs.noFP, uid)
			continue
		}
		// Two different copies of one time would be two deliveries at the same nanosecond:
		// either may be this record's, so each may recognize it (match takes it once).
		for _, fp := range fps {
			rs.byFP[fp] = append(rs.byFP[fp], uid)
		}
		if len(fps) == 1 {
			found = append(found, store.PulledMessage{SourceID: rs.r.src.ID, UID: uid, Fingerprint: fps[0]})
		}
	}
	// Stored only where the record still lacks one (MarkPulledWith keeps a fingerprint).
	if err := st.MarkPulledWith(ctx, found, rs.at); err != nil {
		return 0, err
	}
	return len(missing) - len(rs.noFP), nil
}

// unfingerprinted returns the unique-ids recorded without a fingerprint (before they were
// kept) that the server lists now (listed), for a backfill from the server while its names
// still name those messages: it costs a header each, once, and covers what the account's
// copies cannot (a copy the user deleted). Keeping mail only: a deleting source's records
// are of messages about to be deleted.
func (r *run) unfingerprinted(ctx context.Context, listed func(uid string) bool) ([]string, error) {
	if !r.src.Keep {
		return nil, nil
	}
	fps, err := r.p.st.PulledFingerprints(ctx, r.src.ID)
	if err != nil {
		return nil, err
	}
	var out []string
	for uid, fp := range fps {
		if fp == "" && listed(uid) {
			out = append(out, uid)
		}
	}
	slices.Sort(out)
	return out, nil
}

// storeFingerprints records the fingerprints found by a backfill from the server.
func (r *run) storeFingerprints(ctx context.Context, found []store.PulledMessage) error {
	if len(found) == 0 {
		return nil
	}
	r.p.o.Log.Info("pull: fingerprints of messages pulled before they were kept read from the server", "source", r.src.ID, "count", len(found))
	return r.p.st.MarkPulledWith(ctx, found, r.p.o.Now())
}

// copyDigest is storedDigest of the stored blob id.
func (r *run) copyDigest(ctx context.Context, id int64) (string, error) {
	rc, err := r.p.st.OpenBlob(ctx, id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return storedDigest(rc)
}

// match records the message with fingerprint fp under the unique-id uid if it was pulled
// before; it reports whether it was.
func (rs *resync) match(ctx context.Context, fp, uid string) (bool, error) {
	for len(rs.byFP[fp]) > 0 {
		old := rs.byFP[fp][0]
		rs.byFP[fp] = rs.byFP[fp][1:]
		err := rs.r.p.st.RekeyPulled(ctx, rs.r.src.ID, old, uid)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue // taken by another poller since this one listed, or by another copy
		case errors.Is(err, store.ErrExists):
			return true, nil // recorded by another poller since
		case err != nil:
			return false, err
		}
		delete(rs.r.seen, old)
		rs.r.seen[uid] = rs.at
		rs.r.res.Matched++
		return true, nil
	}
	return false, nil
}

// finish drops the earlier unique-ids that recognized no message (those messages left the
// server) and sets the notice for `pull list`.
func (rs *resync) finish(ctx context.Context) error {
	gone := rs.noFP
	for _, uids := range rs.byFP {
		for _, uid := range uids {
			if _, ok := rs.r.seen[uid]; ok && !slices.Contains(gone, uid) {
				gone = append(gone, uid)
			}
		}
	}
	if err := rs.r.p.st.ForgetPulled(ctx, rs.r.src.ID, gone); err != nil {
		return err
	}
	for _, uid := range gone {
		delete(rs.r.seen, uid)
	}
	if rs.guess && rs.r.res.Matched == 0 && len(rs.noFP) == 0 {
		rs.r.p.o.Log.Info("pull: no message was renamed: the records gone were of mail deleted on the server", "source", rs.r.src.ID)
		return nil
	}
	rs.r.res.Notice = fmt.Sprintf("%s: %s: %d messages recognized as pulled before, %d pulled as new",
		rs.at.UTC().Format(time.DateTime), rs.event, rs.r.res.Matched, rs.r.res.Delivered)
	if len(rs.noFP) > 0 {
		rs.r.res.Notice += fmt.Sprintf(" (%d pulled before fingerprints were kept, with no copy left here to recognize them by)", len(rs.noFP))
	}
	rs.r.p.o.Log.Warn("pull: resynchronized", "source", rs.r.src.ID, "notice", rs.r.res.Notice)
	return nil
}
