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
	ap := &appender{ctx: ctx, st: st, accountID: accountID, mailbox: mb.Name, mailboxID: mb.ID, r: &r}
	ap.batch, _ = st.(store.BatchAppender)
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
		if err := ap.add(m, m.UID, nil); err != nil {
			ap.wait()
			return r, err
		}
		next = m.UID + 1
	}
	if err := ap.finish(); err != nil {
		return r, err
	}
	base := uint32(1)
	if keep {
		if mb, err = st.MailboxByID(ctx, mb.ID); err != nil {
			return r, err
		}
		if f.UIDNext > mb.UIDNext {
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
		if err := ap.add(m, 0, seen); err != nil {
			ap.wait()
			return r, err
		}
	}
	err = ap.finish() // before r is read: it counts what the last run did
	return r, err
}

// Runs of messages go to the store in one AppendBatch, so that they share commits: up to
// appendRun messages or appendRunBytes of bodies, which bounds the memory the run holds.
// One run is committed while the next is read and parsed (so at most two are held): the
// store's commits wait on the disk and the reading on the CPU, and apart they took turns.
const (
	appendRun      = 200
	appendRunBytes = 32 << 20
)

// appender appends the messages of one folder in runs, with AppendBatch when the store has
// it, else one Append (and AdoptUIDs) each. add and flush run in the importing goroutine;
// a run's store calls in a goroutine of their own, awaited before the next run starts, so
// runs commit in order.
type appender struct {
	ctx       context.Context
	st        store.Store
	batch     store.BatchAppender // nil: the store has no AppendBatch
	accountID int64
	mailbox   string
	mailboxID int64
	r         *Result

	run   []store.BatchMessage
	names []string // of the messages in run
	bytes int64

	inFlight chan runResult // the run being committed; nil: none
}

// runResult is what a run's commit gave back.
type runResult struct {
	run   []store.BatchMessage
	names []string
	got   []store.Appended
	err   error
}

// add reads m and queues it to take uid (0: the next); with seen, a message whose content
// the mailbox has is counted as skipped instead.
func (a *appender) add(m Message, uid uint32, seen *contentSet) error {
	am, err := readMessage(m, seen, a.r)
	if errors.Is(err, errDuplicate) {
		a.r.Skipped++
		return nil
	} else if err != nil {
		return err
	}
	a.run = append(a.run, store.BatchMessage{AppendMessage: *am, UID: uid})
	a.names = append(a.names, m.Name)
	a.bytes += am.Size
	if len(a.run) >= appendRun || a.bytes >= appendRunBytes {
		return a.flush()
	}
	return nil
}

// flush waits for the run in flight, then starts committing the queued one.
func (a *appender) flush() error {
	if err := a.wait(); err != nil || len(a.run) == 0 {
		return err
	}
	run, names := a.run, a.names
	a.run, a.names, a.bytes = nil, nil, 0
	done := make(chan runResult, 1)
	a.inFlight = done
	go func() {
		res := runResult{run: run, names: names}
		if a.batch != nil {
			res.got, res.err = a.batch.AppendBatch(a.ctx, a.accountID, a.mailbox, run)
		} else {
			res.got, res.err = a.appendEach(run)
		}
		done <- res
	}()
	return nil
}

// finish commits what is queued and waits for it.
func (a *appender) finish() error {
	if err := a.flush(); err != nil {
		return err
	}
	return a.wait()
}

// wait waits for the run in flight, if any, and counts what it did.
func (a *appender) wait() error {
	if a.inFlight == nil {
		return nil
	}
	res := <-a.inFlight
	a.inFlight = nil
	for i, ap := range res.got {
		if want := res.run[i].UID; want != 0 && ap.Message.UID != want {
			a.r.Notes = append(a.r.Notes, fmt.Sprintf("%s: got UID %d instead of %d (mail arrived in the mailbox during the import)", res.names[i], ap.Message.UID, want))
		}
	}
	a.r.Imported += len(res.got)
	return res.err
}

// appendEach is AppendBatch for a store without it: a commit per message.
func (a *appender) appendEach(run []store.BatchMessage) ([]store.Appended, error) {
	var out []store.Appended
	for _, m := range run {
		if m.UID != 0 {
			mb, err := a.st.MailboxByID(a.ctx, a.mailboxID)
			if err != nil {
				return out, err
			}
			if m.UID > mb.UIDNext {
				if err := a.st.AdoptUIDs(a.ctx, a.mailboxID, 0, m.UID); err != nil {
					return out, err
				}
			}
		}
		ap, err := a.st.Append(a.ctx, a.accountID, a.mailbox, &m.AppendMessage)
		if err != nil {
			return out, err
		}
		out = append(out, ap)
	}
	return out, nil
}

var errDuplicate = errors.New("already in the mailbox")

// readMessage reads a message with CRLF line ends and parses it, ready to append with its
// flags and date; with seen set, a message whose content the mailbox has is errDuplicate.
func readMessage(m Message, seen *contentSet, r *Result) (*store.AppendMessage, error) {
	rc, err := m.Open()
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	body := toCRLF(raw)
	if seen != nil {
		dup, err := seen.take(body)
		if err != nil {
			return nil, err
		}
		if dup {
			return nil, errDuplicate
		}
	}
	parsed, err := message.Parse(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	var flags []string
	for _, fl := range m.Flags {
		if _, err := store.NormalizeFlags([]string{fl}); err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: flag %q dropped (not an IMAP flag)", m.Name, fl))
			continue
		}
		flags = append(flags, fl)
	}
	return &store.AppendMessage{Body: bytes.NewReader(body), Size: int64(len(body)),
		Parsed: parsed, Flags: flags, InternalDate: m.Date}, nil
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
