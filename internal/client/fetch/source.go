package fetch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/wire"
)

// Source reads a whole IMAP account for a migration (`petrel import imap://`): every folder
// with its UIDVALIDITY and UIDNEXT, and each message's UID, flags (keywords included),
// INTERNALDATE and size; bodies on request. It changes nothing on the server: folders are
// opened with EXAMINE and bodies read with BODY.PEEK[] (RFC 9051 §6.3.3, §6.4.5). It shares
// the connection, TLS and login code of the fetch of one folder.
type Source struct {
	r *imapRun

	selected string            // the folder EXAMINEd now
	cache    map[uint32][]byte // bodies of the last batch, by UID, in folder selected
}

// SourceFolder is one folder of the account. Name uses "/" between levels, whatever the
// server's hierarchy delimiter, and "INBOX" for the inbox.
type SourceFolder struct {
	Name        string
	UIDValidity uint32
	UIDNext     uint32
	Messages    []SourceMessage // in UID order

	remote string // the name on the server
}

// SourceMessage is one message of a folder.
type SourceMessage struct {
	UID   uint32
	Flags []string // system flags and keywords, \Recent left out (a session's, not the message's)
	Date  time.Time
	Size  int64
}

// Batches of bodies are bounded in count and bytes: one round trip for many small messages,
// bounded memory for large ones.
const (
	sourceBatch      = 100
	sourceBatchBytes = 16 << 20
)

// OpenSource connects and logs in to the IMAP server of a (its IMAP endpoint) with pass.
func OpenSource(ctx context.Context, a *clientconf.Account, pass string) (*Source, error) {
	if a.IMAP == nil {
		return nil, errors.New("the account has no IMAP server")
	}
	r := &imapRun{a: a, m: a.IMAP, res: &Result{}}
	if err := r.connect(ctx, pass); err != nil {
		return nil, err
	}
	return &Source{r: r}, nil
}

// Close logs out and closes the connection.
func (s *Source) Close() {
	s.r.logout()
	s.r.close()
}

// Folders lists every selectable folder with its messages.
func (s *Source) Folders() ([]SourceFolder, error) {
	var list []*imap.ListData
	err := s.r.do(func() (err error) {
		list, err = s.r.c.List("", "*", nil).Collect()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list folders: %w", err)
	}
	var out []SourceFolder
	for _, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		f := SourceFolder{Name: localName(l.Mailbox, l.Delim), remote: l.Mailbox}
		if err := s.listFolder(&f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	// INBOX first: it decides the POP3 UIDL format, and it is what a user checks first.
	inboxFirst := func(f SourceFolder) int {
		if f.Name == "INBOX" {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(out, func(a, b SourceFolder) int { return cmp.Compare(inboxFirst(a), inboxFirst(b)) })
	return out, nil
}

// localName maps a server's folder name to the store's: "/" between levels, INBOX in upper
// case (RFC 9051 §5.1: INBOX is case-insensitive).
func localName(name string, delim rune) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	if delim != 0 && delim != '/' {
		name = strings.ReplaceAll(name, string(delim), "/")
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX/") {
		name = "INBOX/" + name[6:]
	}
	return name
}

func (s *Source) examine(remote string) (*imap.SelectData, error) {
	var sel *imap.SelectData
	err := s.r.do(func() (err error) {
		sel, err = s.r.c.Select(remote, &imap.SelectOptions{ReadOnly: true}).Wait()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open folder %q: %w", remote, err)
	}
	s.selected, s.cache = remote, nil
	return sel, nil
}

func (s *Source) listFolder(f *SourceFolder) error {
	sel, err := s.examine(f.remote)
	if err != nil {
		return err
	}
	if sel.UIDValidity == 0 {
		return fmt.Errorf("%w: no UIDVALIDITY for folder %q", wire.ErrProtocol, f.remote)
	}
	f.UIDValidity, f.UIDNext = sel.UIDValidity, uint32(sel.UIDNext)
	if sel.NumMessages == 0 {
		return nil
	}
	err = s.r.do(func() error {
		cmd := s.r.c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true})
		for m := cmd.Next(); m != nil; m = cmd.Next() {
			buf, err := m.Collect()
			if err != nil {
				s.r.abort(cmd)
				return err
			}
			if buf.UID == 0 {
				continue
			}
			msg := SourceMessage{UID: uint32(buf.UID), Date: buf.InternalDate, Size: buf.RFC822Size}
			for _, fl := range buf.Flags {
				if !strings.EqualFold(string(fl), `\Recent`) {
					msg.Flags = append(msg.Flags, string(fl))
				}
			}
			f.Messages = append(f.Messages, msg)
		}
		return cmd.Close()
	})
	if err != nil {
		return fmt.Errorf("list folder %q: %w", f.remote, err)
	}
	slices.SortFunc(f.Messages, func(a, b SourceMessage) int { return cmp.Compare(a.UID, b.UID) })
	// A server that does not send UIDNEXT (it is optional before IMAP4rev2) gets the next
	// UID after the last one.
	if n := len(f.Messages); n > 0 && f.UIDNext <= f.Messages[n-1].UID {
		f.UIDNext = f.Messages[n-1].UID + 1
	}
	return nil
}

// Body returns the message with uid in folder f as the server has it. Bodies are fetched in
// batches: the message asked for and the ones after it in f.
func (s *Source) Body(f *SourceFolder, uid uint32) ([]byte, error) {
	if s.selected == f.remote {
		if b, ok := s.cache[uid]; ok {
			delete(s.cache, uid)
			return b, nil
		}
	} else if _, err := s.examine(f.remote); err != nil {
		return nil, err
	}
	i, found := slices.BinarySearchFunc(f.Messages, uid, func(m SourceMessage, uid uint32) int { return cmp.Compare(m.UID, uid) })
	if !found {
		return nil, fmt.Errorf("folder %q: no UID %d", f.remote, uid)
	}
	var set imap.UIDSet
	var bytes int64
	for _, m := range f.Messages[i:] {
		if len(set) > 0 && (len(set) >= sourceBatch || bytes+m.Size > sourceBatchBytes) {
			break
		}
		set.AddNum(imap.UID(m.UID))
		bytes += m.Size
	}
	s.cache = nil
	cache, err := s.fetchSection(set, &imap.FetchItemBodySection{Peek: true})
	if err != nil {
		return nil, fmt.Errorf("folder %q: fetch: %w", f.remote, err)
	}
	s.cache = cache
	b, ok := s.cache[uid]
	if !ok {
		// Expunged on the server since the listing.
		return nil, fmt.Errorf("folder %q: UID %d: %w", f.remote, uid, ErrGone)
	}
	delete(s.cache, uid)
	return b, nil
}

// Headers returns the header blocks of the messages uids of folder f (BODY.PEEK[HEADER],
// RFC 9051 §6.4.5: the header fields and the empty line after them), by UID, a thousand
// messages a command; a message expunged since the listing is absent.
func (s *Source) Headers(f *SourceFolder, uids []uint32) (map[uint32][]byte, error) {
	if len(uids) == 0 {
		return map[uint32][]byte{}, nil
	}
	if s.selected != f.remote {
		if _, err := s.examine(f.remote); err != nil {
			return nil, err
		}
	}
	// In batches, so that a set of scattered UIDs does not make a command line longer than
	// a server takes (Dovecot: 64 KiB).
	uids = slices.Sorted(slices.Values(uids))
	out := map[uint32][]byte{}
	for batch := range slices.Chunk(uids, 1000) {
		var set imap.UIDSet
		for _, uid := range batch {
			set.AddNum(imap.UID(uid))
		}
		heads, err := s.fetchSection(set, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true})
		if err != nil {
			return nil, fmt.Errorf("folder %q: fetch headers: %w", f.remote, err)
		}
		maps.Copy(out, heads)
	}
	return out, nil
}

// fetchSection fetches section of the messages set of the selected folder, by UID.
func (s *Source) fetchSection(set imap.UIDSet, section *imap.FetchItemBodySection) (map[uint32][]byte, error) {
	out := map[uint32][]byte{}
	err := s.r.do(func() error {
		cmd := s.r.c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
		for m := cmd.Next(); m != nil; m = cmd.Next() {
			buf, err := m.Collect()
			if err != nil {
				s.r.abort(cmd)
				return err
			}
			if b := buf.FindBodySection(section); b != nil && buf.UID != 0 {
				out[uint32(buf.UID)] = b
			}
		}
		return cmd.Close()
	})
	return out, err
}

// ErrGone is a message expunged on the server between the listing and the download.
var ErrGone = errors.New("the message is gone from the server")

// Folder lists one folder, by its name on the server ("" is INBOX), with its messages.
func (s *Source) Folder(name string) (SourceFolder, error) {
	if name == "" {
		name = "INBOX"
	}
	f := SourceFolder{Name: name, remote: name}
	return f, s.listFolder(&f)
}

// Delete removes messages of f from the server, as a fetch in mode delete does: it opens f
// read-write, marks them \Deleted, and expunges them with UID EXPUNGE (UIDPLUS); without
// UIDPLUS a plain EXPUNGE is sent only when no other message of the folder is marked
// \Deleted (it would remove those too), else the messages stay marked for the next time.
func (s *Source) Delete(f *SourceFolder, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	err := s.r.do(func() error {
		_, err := s.r.c.Select(f.remote, nil).Wait()
		return err
	})
	if err != nil {
		return fmt.Errorf("open folder %q: %w", f.remote, err)
	}
	s.selected, s.cache = "", nil // opened read-write now: Body examines again
	if s.r.flagged == nil {
		s.r.flagged = map[imap.UID]bool{}
	}
	list := make([]imap.UID, len(uids))
	for i, u := range uids {
		list[i] = imap.UID(u)
	}
	return s.r.remove(list)
}
