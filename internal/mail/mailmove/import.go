package mailmove

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"petrel/internal/mail/message"
	"petrel/internal/store"
)

// Import rules, for a rerun after a kill to add every message once:
//   - A folder with Dovecot UIDs whose mailbox is new (or has the same UIDVALIDITY from an
//     earlier run) keeps them: before each message, AdoptUIDs raises UIDNEXT to the
//     message's UID, and the message is appended with it. A rerun skips every UID the
//     mailbox has. At the end UIDNEXT becomes the source's, so UIDs Dovecot gave to
//     messages expunged since are never given again.
//   - Every other message (an mbox, a Maildir without dovecot-uidlist, a message Dovecot had
//     not numbered yet, a mailbox that already held mail) is matched by content: the
//     SHA-256 and size of its bytes as they would be stored, against the messages the
//     mailbox has (those above the kept UIDs). Matching counts copies, so a source that
//     holds the same message twice gets two, and a rerun adds none.
// Appends are single store commits, so a kill leaves every message either in or out.

// Result is what the import did with one folder.
type Result struct {
	Folder   string
	Imported int
	Skipped  int  // already in the mailbox (a rerun)
	UIDsKept bool // the mailbox has the source's UIDVALIDITY and UIDs
	// Notes are things the operator should know: flags dropped, UIDs that could not be
	// kept.
	Notes []string
}

// Import adds the folders' messages to an account's mailboxes, creating (and subscribing)
// the mailboxes that are missing. If INBOX kept Dovecot's UIDs, the account's POP3 UIDLs
// switch to Dovecot's format (store.UIDLDovecot), so POP3 clients download nothing again.
// progress, if not nil, is called after each folder.
func Import(ctx context.Context, st store.Store, accountID int64, folders []Folder, progress func(Result)) ([]Result, error) {
	var results []Result
	for _, f := range folders {
		r, err := importFolder(ctx, st, accountID, f)
		if err != nil {
			return results, fmt.Errorf("%s: %w", f.Name, err)
		}
		if r.Folder == store.Inbox && r.UIDsKept {
			if err := st.SetPOP3UIDL(ctx, accountID, store.UIDLDovecot); err != nil {
				return results, err
			}
			r.Notes = append(r.Notes, "POP3 UIDLs are now in Dovecot's format (%08Xu%08Xv)")
		}
		results = append(results, r)
		if progress != nil {
			progress(r)
		}
	}
	return results, nil
}

func importFolder(ctx context.Context, st store.Store, accountID int64, f Folder) (Result, error) {
	r := Result{Folder: f.Name}
	mb, err := st.Mailbox(ctx, accountID, f.Name)
	if errors.Is(err, store.ErrNotFound) {
		mb, err = st.CreateMailbox(ctx, accountID, f.Name)
	}
	if err != nil {
		return r, err
	}
	if err := st.SetSubscribed(ctx, accountID, mb.Name, true); err != nil {
		return r, err
	}
	keep := f.UIDValidity != 0
	if keep && mb.UIDValidity != f.UIDValidity {
		if mb.UIDNext != 1 {
			keep = false
			r.Notes = append(r.Notes, fmt.Sprintf("the mailbox already had mail (UIDVALIDITY %d): new UIDs, clients will download it again", mb.UIDValidity))
		} else if err := st.AdoptUIDs(ctx, mb.ID, f.UIDValidity, 1); errors.Is(err, store.ErrExists) {
			keep = false
			r.Notes = append(r.Notes, fmt.Sprintf("UIDVALIDITY %d is another mailbox's here: new UIDs", f.UIDValidity))
		} else if err != nil {
			return r, err
		}
	}
	r.UIDsKept = keep
	have, err := st.Messages(ctx, mb.ID, store.Filter{})
	if err != nil {
		return r, err
	}
	present := map[uint32]bool{}
	for _, m := range have {
		present[m.UID] = true
	}
	next := mb.UIDNext
	if keep {
		if mb, err = st.MailboxByID(ctx, mb.ID); err != nil {
			return r, err
		}
		next = mb.UIDNext
	}
	var rest []Message
	for _, m := range f.Messages {
		if !keep || m.UID == 0 {
			rest = append(rest, m)
			continue
		}
		if present[m.UID] {
			r.Skipped++
			continue
		}
		if m.UID < next {
			// Passed over by an earlier run that stopped between raising UIDNEXT and the
			// append, or taken by a delivery meanwhile: it needs a new UID.
			r.Notes = append(r.Notes, fmt.Sprintf("%s: UID %d could not be kept", m.Name, m.UID))
			rest = append(rest, m)
			continue
		}
		if m.UID > next {
			if err := st.AdoptUIDs(ctx, mb.ID, 0, m.UID); err != nil {
				return r, err
			}
		}
		ap, err := appendMessage(ctx, st, accountID, mb.Name, m, nil, &r)
		if err != nil {
			return r, err
		}
		if ap.Message.UID != m.UID {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: got UID %d instead of %d (mail arrived in the mailbox during the import)", m.Name, ap.Message.UID, m.UID))
		}
		next = ap.Message.UID + 1
		r.Imported++
	}
	base := uint32(1)
	if keep {
		if f.UIDNext > next {
			if err := st.AdoptUIDs(ctx, mb.ID, 0, f.UIDNext); err != nil {
				return r, err
			}
		}
		base = max(f.UIDNext, 1)
	}
	if len(rest) == 0 {
		return r, nil
	}
	seen := newContentSet(ctx, st, have, base)
	for _, m := range rest {
		if _, err := appendMessage(ctx, st, accountID, mb.Name, m, seen, &r); errors.Is(err, errDuplicate) {
			r.Skipped++
			continue
		} else if err != nil {
			return r, err
		}
		r.Imported++
	}
	return r, nil
}

var errDuplicate = errors.New("already in the mailbox")

// appendMessage reads a message, stores it with CRLF line ends, and appends it with its
// flags and date; with seen set, a message whose content the mailbox has is skipped
// (errDuplicate).
func appendMessage(ctx context.Context, st store.Store, accountID int64, mailbox string, m Message, seen *contentSet, r *Result) (store.Appended, error) {
	rc, err := m.Open()
	if err != nil {
		return store.Appended{}, err
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return store.Appended{}, fmt.Errorf("%s: %w", m.Name, err)
	}
	body := toCRLF(raw)
	if seen != nil {
		dup, err := seen.take(body)
		if err != nil {
			return store.Appended{}, err
		}
		if dup {
			return store.Appended{}, errDuplicate
		}
	}
	parsed, err := message.Parse(bytes.NewReader(body))
	if err != nil {
		return store.Appended{}, err
	}
	var flags []string
	for _, fl := range m.Flags {
		if _, err := store.NormalizeFlags([]string{fl}); err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: flag %q dropped (not an IMAP flag)", m.Name, fl))
			continue
		}
		flags = append(flags, fl)
	}
	return st.Append(ctx, accountID, mailbox, &store.AppendMessage{Body: bytes.NewReader(body), Size: int64(len(body)),
		Parsed: parsed, Flags: flags, InternalDate: m.Date})
}

// toCRLF gives every line a CRLF end, as the store keeps messages (and IMAP and POP3 serve
// them); CRLF already there stays, a lone CR becomes CRLF too.
func toCRLF(b []byte) []byte {
	if !bytes.ContainsAny(b, "\r\n") {
		return b
	}
	out := make([]byte, 0, len(b)+bytes.Count(b, []byte("\n")))
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

type contentKey struct {
	size int64
	sum  [sha256.Size]byte
}

// contentSet counts the bodies of a mailbox's messages by content, reading a stored body
// only when a message of the same size comes to be imported.
type contentSet struct {
	ctx    context.Context
	st     store.Store
	bySize map[int64][]int64 // size -> blob IDs not yet hashed
	counts map[contentKey]int
}

func newContentSet(ctx context.Context, st store.Store, have []store.Message, base uint32) *contentSet {
	s := &contentSet{ctx: ctx, st: st, bySize: map[int64][]int64{}, counts: map[contentKey]int{}}
	for _, m := range have {
		if m.UID >= base {
			s.bySize[m.Size] = append(s.bySize[m.Size], m.BlobID)
		}
	}
	return s
}

// take reports whether the mailbox holds a copy of body not yet matched, and matches it.
func (s *contentSet) take(body []byte) (bool, error) {
	size := int64(len(body))
	for _, id := range s.bySize[size] {
		rc, err := s.st.OpenBlob(s.ctx, id)
		if err != nil {
			return false, err
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return false, err
		}
		k := contentKey{size: size}
		h.Sum(k.sum[:0])
		s.counts[k]++
	}
	delete(s.bySize, size)
	k := contentKey{size: size, sum: sha256.Sum256(body)}
	if s.counts[k] > 0 {
		s.counts[k]--
		return true, nil
	}
	return false, nil
}
