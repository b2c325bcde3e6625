package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/fetch"
	"petrel/internal/config"
)

// imap polls one folder of an IMAP account through fetch.Source (EXAMINE, UID FETCH
// BODY.PEEK[]): a message's unique-id is "UIDVALIDITY/UID" (RFC 9051 §2.3.1.1), so a
// folder whose UIDVALIDITY changed is pulled again as new. Delivered messages are removed
// (\Deleted, then UID EXPUNGE) at the end unless the source keeps mail.
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
	key := func(uid uint32) string { return fmt.Sprintf("%d/%d", f.UIDValidity, uid) }
	onServer := map[string]bool{}
	for _, m := range f.Messages {
		onServer[key(m.UID)] = true
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
			if err := r.deliver(ctx, key(m.UID), bodyBytes{bytes.NewReader(b)}); err != nil {
				return err
			}
		}
		if !r.src.Keep {
			remove = append(remove, m.UID)
		}
	}
	if err := s.Delete(&f, remove); err != nil {
		return err
	}
	r.res.Deleted = len(remove)
	return nil
}

// bodyBytes is a body held in memory, as deliver.Body.
type bodyBytes struct{ *bytes.Reader }

func (b bodyBytes) Size() int64 { return b.Reader.Size() }
