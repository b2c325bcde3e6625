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
	if err := r.imapBackfill(ctx, s, &f, prefix); err != nil {
		return err
	}
	var rs *resync
	if len(earlier) > 0 {
		from := map[string]bool{}
		for _, uid := range earlier {
			v, _, _ := strings.Cut(uid, "/")
			if strings.HasPrefix(v, store.RetiredPrefix) {
				v = "a previous folder"
			}
			from[v] = true
		}
		event := fmt.Sprintf("UIDVALIDITY of %s changed from %s to %d", r.folder(), strings.Join(slices.Sorted(maps.Keys(from)), ","), f.UIDValidity)
		if rs, err = r.newResync(ctx, earlier, "the UIDVALIDITY of the folder changed", event); err != nil {
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

// imapBackfill reads the headers of the messages of folder f recorded under its UIDVALIDITY
// (prefix) without a fingerprint, and records their fingerprints (unfingerprinted).
func (r *run) imapBackfill(ctx context.Context, s *fetch.Source, f *fetch.SourceFolder, prefix string) error {
	missing, err := r.unfingerprinted(ctx, func(uid string) bool { return strings.HasPrefix(uid, prefix) })
	if err != nil || len(missing) == 0 {
		return err
	}
	byUID := map[uint32]string{}
	for _, key := range missing {
		if n, err := strconv.ParseUint(strings.TrimPrefix(key, prefix), 10, 32); err == nil {
			byUID[uint32(n)] = key
		}
	}
	heads, err := s.Headers(f, slices.Collect(maps.Keys(byUID)))
	if err != nil {
		return err
	}
	var found []store.PulledMessage
	for uid, h := range heads {
		fp, err := headerDigest(bytes.NewReader(h))
		if err != nil {
			return err
		}
		if key, ok := byUID[uid]; ok {
			found = append(found, store.PulledMessage{SourceID: r.src.ID, UID: key, Fingerprint: fp})
		}
	}
	return r.storeFingerprints(ctx, found)
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
