package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/fetch"
	"petrel/internal/config"
	"petrel/internal/store"
)

// imap polls one folder of an IMAP account through fetch.Source (EXAMINE, UID FETCH
// BODY.PEEK[]): a message's unique-id is "UIDVALIDITY/UID" (RFC 9051 §2.3.1.1); a folder
// whose UIDVALIDITY changed is resynchronized by fingerprint (resync). Delivered messages
// are removed (\Deleted, then UID EXPUNGE) at the end unless the source keeps mail.
func (r *run) imap(ctx context.Context, pass string) error {
	host, portText, err := net.SplitHostPort(r.src.Addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("port %q: %w", portText, err)
	}
	a := &clientconf.Account{
		Name: "pull", User: r.src.User, Timeout: config.Duration{Duration: r.p.o.DialTimeout},
		IMAP: &clientconf.IMAP{
			Endpoint: clientconf.Endpoint{Host: host, Port: port, TLS: r.src.TLS, CAFile: r.src.CAFile, AllowPlaintext: r.src.TLS == "plain"},
			Folder:   r.src.Folder,
		},
	}
	s, err := fetch.OpenSource(ctx, a, pass)
	if err != nil {
		return err
	}
	defer s.Close()
	f, err := s.Folder(r.src.Folder)
	if err != nil {
		return err
	}
	r.res.OnServer = len(f.Messages)
	prefix := fmt.Sprintf("%d/", f.UIDValidity)
	key := func(uid uint32) string { return prefix + strconv.FormatUint(uint64(uid), 10) }
	onServer := map[string]bool{}
	for _, m := range f.Messages {
		onServer[key(m.UID)] = true
	}
	// Unique-ids of another UIDVALIDITY (or retired by a change of folder) name no message
	// of the folder now: what they pulled is recognized by fingerprint (resync), and they
	// are dropped only once every message present has been looked at.
	var earlier []string
	for uid := range r.seen {
		if !strings.HasPrefix(uid, prefix) {
			earlier = append(earlier, uid)
			onServer[uid] = true
		}
	}
	var rs *resync
	if len(earlier) > 0 {
		if rs, err = r.newResync(ctx, f.UIDValidity, earlier); err != nil {
			return err
		}
	}
	if err := r.forget(ctx, onServer); err != nil {
		return err
	}
	var remove []uint32
	for _, m := range f.Messages {
		if _, ok := r.seen[key(m.UID)]; !ok {
			b, err := s.Body(&f, m.UID)
			if errors.Is(err, fetch.ErrGone) {
				continue // expunged by another client since the listing
			}
			if err != nil {
				return err
			}
			body := bodyBytes{bytes.NewReader(b)}
			fp, err := bodyDigest(body)
			if err != nil {
				return err
			}
			matched := false
			if rs != nil {
				if matched, err = rs.match(ctx, fp, key(m.UID)); err != nil {
					return err
				}
			}
			if !matched {
				if err := r.deliver(ctx, key(m.UID), fp, body); err != nil {
					return err
				}
			}
		}
		if !r.src.Keep {
			remove = append(remove, m.UID)
		}
	}
	if rs != nil {
		if err := rs.finish(ctx); err != nil {
			return err
		}
	}
	if err := s.Delete(&f, remove); err != nil {
		return err
	}
	r.res.Deleted = len(remove)
	return nil
}

// resync recognizes, in a folder whose UIDVALIDITY changed (RFC 9051 §2.3.1.1: its UIDs no
// longer name the messages they named), the messages pulled under the old UIDVALIDITY by
// their fingerprints, so that a server that renumbered a folder (a rebuilt index, a move to
// another server) does not make the account receive it again. Each recognized message takes
// over the recorded unique-id of one pulled before (store.PullState.RekeyPulled, one commit),
// so a resync cut short goes on where it stopped, and no record recognizes two messages.
type resync struct {
	r    *run
	byFP map[string][]string // fingerprint -> earlier unique-ids with it
	from []string            // the earlier UIDVALIDITYs (or "folder changed")
	to   uint32
	noFP []string // earlier unique-ids recorded without a fingerprint (before they were kept)
	at   time.Time
}

func (r *run) newResync(ctx context.Context, to uint32, earlier []string) (*resync, error) {
	fps, err := r.p.st.PulledFingerprints(ctx, r.src.ID)
	if err != nil {
		return nil, err
	}
	rs := &resync{r: r, byFP: map[string][]string{}, to: to, at: r.p.o.Now()}
	from := map[string]bool{}
	slices.Sort(earlier)
	for _, uid := range earlier {
		v, _, _ := strings.Cut(uid, "/")
		if strings.HasPrefix(v, store.RetiredPrefix) {
			v = "a previous folder"
		}
		from[v] = true
		if fp := fps[uid]; fp != "" {
			rs.byFP[fp] = append(rs.byFP[fp], uid)
		} else {
			rs.noFP = append(rs.noFP, uid)
		}
	}
	rs.from = slices.Sorted(maps.Keys(from))
	r.p.o.Log.Warn("pull: the UIDVALIDITY of the folder changed: messages pulled before are recognized by their header, not pulled again",
		"source", r.src.ID, "folder", r.folder(), "from", strings.Join(rs.from, ","), "to", to, "pulled_before", len(earlier))
	return rs, nil
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
			continue // taken by another poller since this one listed
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
// folder) and sets the notice for `pull list`.
func (rs *resync) finish(ctx context.Context) error {
	gone := rs.noFP
	for _, uids := range rs.byFP {
		gone = append(gone, uids...)
	}
	if err := rs.r.p.st.ForgetPulled(ctx, rs.r.src.ID, gone); err != nil {
		return err
	}
	for _, uid := range gone {
		delete(rs.r.seen, uid)
	}
	rs.r.res.Notice = fmt.Sprintf("%s: UIDVALIDITY of %s changed from %s to %d: %d messages recognized as pulled before, %d pulled as new",
		rs.at.UTC().Format(time.DateTime), rs.r.folder(), strings.Join(rs.from, ","), rs.to, rs.r.res.Matched, rs.r.res.Delivered)
	if len(rs.noFP) > 0 {
		rs.r.res.Notice += fmt.Sprintf(" (%d recorded before fingerprints were kept could not be recognized)", len(rs.noFP))
	}
	rs.r.p.o.Log.Warn("pull: resynchronized after a UIDVALIDITY change", "source", rs.r.src.ID, "notice", rs.r.res.Notice)
	return nil
}

// folder is the source's IMAP folder.
func (r *run) folder() string {
	if r.src.Folder == "" {
		return "INBOX"
	}
	return r.src.Folder
}

// bodyBytes is a body held in memory, as deliver.Body.
type bodyBytes struct{ *bytes.Reader }

func (b bodyBytes) Size() int64 { return b.Reader.Size() }
