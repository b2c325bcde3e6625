// Package outbox is the durable queue of `petrel send`: a message is first written to the
// outbox and only leaves it when a submission server has answered 250 to its DATA, so mail
// written offline is never lost.
//
// Layout (one directory per account):
//
//	DIR/SEQ.msg      a queued message; SEQ (20 digits) orders the queue
//	DIR/tmp/         messages being written (never flushed)
//	DIR/failed/      messages a server refused permanently (5xx), with SEQ.err saying why
//	DIR/.lock        flock held while the queue is added to or flushed
//
// A queued file is "petrel-outbox 1", one "from ADDR" line, one "to ADDR" line per
// recipient, an empty line, then the message exactly as it will be sent. Files are written in
// tmp/, fsynced, renamed into place, and the directory is fsynced: a message the user was told
// is queued survives a crash.
//
// Flush sends the queue in SEQ order over one connection. It stops at the first temporary
// failure (4xx, network) so that the order is kept; a permanent refusal moves the message to
// failed/ and goes on with the next.
package outbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"petrel/internal/lib/safefile"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Envelope is the SMTP envelope of a message.
type Envelope struct {
	From string   // MAIL FROM; "" is the null sender
	To   []string // RCPT TO
}

// Entry is a queued (or failed) message.
type Entry struct {
	ID       string // SEQ, the file name without ".msg"
	Path     string
	Envelope Envelope
	Queued   time.Time // modification time of the file
	Size     int64     // bytes of the message (without the envelope lines)
	Err      string    // for failed messages: why the server refused it
}

// Outbox is one account's queue directory.
type Outbox struct {
	dir string
}

const magic = "petrel-outbox 1"

// Open opens (creating it if needed) the queue in dir.
func Open(dir string) (*Outbox, error) {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "failed")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	return &Outbox{dir: dir}, nil
}

// Dir is the queue directory.
func (o *Outbox) Dir() string { return o.dir }

// lock takes the queue's flock, waiting for a concurrent send or flush to finish.
func (o *Outbox) lock() (unlock func(), err error) {
	return safefile.Lock(filepath.Join(o.dir, ".lock"))
}

// Add queues a message: env plus the bytes of msg. It returns once the message is durable.
func (o *Outbox) Add(env Envelope, msg io.Reader) (Entry, error) {
	if len(env.To) == 0 {
		return Entry{}, errors.New("no recipients")
	}
	for _, a := range append([]string{env.From}, env.To...) {
		if strings.ContainsAny(a, "\r\n<> ") {
			return Entry{}, fmt.Errorf("invalid address %q", a)
		}
	}
	f, err := os.CreateTemp(filepath.Join(o.dir, "tmp"), "msg*")
	if err != nil {
		return Entry{}, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "%s\nfrom %s\n", magic, env.From)
	for _, to := range env.To {
		fmt.Fprintf(w, "to %s\n", to)
	}
	w.WriteString("\n")
	n, err := io.Copy(w, msg)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Entry{}, err
	}
	unlock, err := o.lock()
	if err != nil {
		return Entry{}, err
	}
	defer unlock()
	id, err := o.nextID()
	if err != nil {
		return Entry{}, err
	}
	path := filepath.Join(o.dir, id+".msg")
	if err := os.Rename(tmp, path); err != nil {
		return Entry{}, err
	}
	if err := safefile.SyncDir(o.dir); err != nil {
		return Entry{}, err
	}
	return Entry{ID: id, Path: path, Envelope: env, Queued: time.Now(), Size: n}, nil
}

// nextID is a sequence number above every queued one. It starts from the clock so that IDs
// also stay unique against failed/ and across deleted queues.
func (o *Outbox) nextID() (string, error) {
	next := time.Now().UnixNano()
	ids, err := o.ids(o.dir)
	if err != nil {
		return "", err
	}
	if len(ids) > 0 {
		last, _ := strconv.ParseInt(ids[len(ids)-1], 10, 64)
		next = max(next, last+1)
	}
	return fmt.Sprintf("%020d", next), nil
}

// ids lists the SEQs of the .msg files of dir in order.
func (o *Outbox) ids(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".msg")
		if !ok || len(id) != 20 {
			continue
		}
		if _, err := strconv.ParseInt(id, 10, 64); err != nil {
			continue
		}
		ids = append(ids, id)
	}
	sort.Strings(ids) // fixed width: lexical order is numeric order
	return ids, nil
}

// List returns the queued messages in send order.
func (o *Outbox) List() ([]Entry, error) { return o.list(o.dir) }

// Failed returns the messages that were refused permanently.
func (o *Outbox) Failed() ([]Entry, error) { return o.list(filepath.Join(o.dir, "failed")) }

func (o *Outbox) list(dir string) ([]Entry, error) {
	ids, err := o.ids(dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, id := range ids {
		e, err := readEntry(dir, id)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// readEntry reads the envelope of a queued file.
func readEntry(dir, id string) (Entry, error) {
	e := Entry{ID: id, Path: filepath.Join(dir, id+".msg")}
	f, err := os.Open(e.Path)
	if err != nil {
		return e, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	env, hdr, err := readEnvelope(r)
	if err != nil {
		return e, fmt.Errorf("%s: %w", e.Path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return e, err
	}
	e.Envelope, e.Queued, e.Size = env, fi.ModTime(), fi.Size()-hdr
	if b, err := os.ReadFile(filepath.Join(dir, id+".err")); err == nil {
		e.Err = strings.TrimSpace(string(b))
	}
	return e, nil
}

// readEnvelope parses the envelope lines and returns their length in bytes; r is left at the
// start of the message.
func readEnvelope(r *bufio.Reader) (Envelope, int64, error) {
	var env Envelope
	var n int64
	first := true
	for {
		line, err := r.ReadString('\n')
		n += int64(len(line))
		if err != nil {
			return env, n, errors.New("truncated outbox file")
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case first:
			if line != magic {
				return env, n, errors.New("not an outbox file")
			}
			first = false
		case line == "":
			if len(env.To) == 0 {
				return env, n, errors.New("outbox file without recipients")
			}
			return env, n, nil
		case strings.HasPrefix(line, "from "):
			env.From = strings.TrimPrefix(line, "from ")
		case strings.HasPrefix(line, "to "):
			env.To = append(env.To, strings.TrimPrefix(line, "to "))
		default:
			return env, n, fmt.Errorf("bad outbox line %q", line)
		}
	}
}

// Sender submits messages over one connection.
type Sender interface {
	// Send submits one message; nil means the server answered 250 to its DATA.
	Send(env Envelope, msg io.Reader) error
	Close() error
}

// PermanentError is a refusal that will not change by trying again (SMTP 5xx).
type PermanentError interface {
	error
	Permanent() bool
}

// FlushResult says what a flush did.
type FlushResult struct {
	Sent      []Entry
	Failed    []Entry // refused permanently, now in failed/
	Remaining int     // still queued
}

// Flush sends the queue in order through the Sender dial returns (dial is not called when
// the queue is empty). It returns at the first error that is not a permanent refusal; the
// message concerned and the rest stay queued.
func (o *Outbox) Flush(dial func() (Sender, error)) (FlushResult, error) {
	var res FlushResult
	unlock, err := o.lock()
	if err != nil {
		return res, err
	}
	defer unlock()
	ids, err := o.ids(o.dir)
	if err != nil || len(ids) == 0 {
		return res, err
	}
	s, err := dial()
	if err != nil {
		res.Remaining = len(ids)
		return res, err
	}
	defer s.Close()
	for i, id := range ids {
		e, err := o.sendOne(s, id)
		var pe PermanentError
		switch {
		case err == nil:
			res.Sent = append(res.Sent, e)
		case errors.As(err, &pe) && pe.Permanent():
			e.Err = err.Error()
			if merr := o.moveToFailed(id, e.Err); merr != nil {
				res.Remaining = len(ids) - i
				return res, merr
			}
			e.Path = filepath.Join(o.dir, "failed", id+".msg")
			res.Failed = append(res.Failed, e)
		default:
			res.Remaining = len(ids) - i
			return res, err
		}
	}
	return res, nil
}

func (o *Outbox) sendOne(s Sender, id string) (Entry, error) {
	e, err := readEntry(o.dir, id)
	if err != nil {
		return e, err
	}
	f, err := os.Open(e.Path)
	if err != nil {
		return e, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	if _, _, err := readEnvelope(r); err != nil {
		return e, err
	}
	if err := s.Send(e.Envelope, r); err != nil {
		return e, err
	}
	// Sent: the server has it. Removing the file is what takes it out of the queue; if we
	// crash before the directory is synced, the message may be sent twice, never lost.
	if err := os.Remove(e.Path); err != nil {
		return e, err
	}
	return e, safefile.SyncDir(o.dir)
}

func (o *Outbox) moveToFailed(id, reason string) error {
	failed := filepath.Join(o.dir, "failed")
	if err := os.WriteFile(filepath.Join(failed, id+".err"), []byte(reason+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(o.dir, id+".msg"), filepath.Join(failed, id+".msg")); err != nil {
		return err
	}
	if err := safefile.SyncDir(failed); err != nil {
		return err
	}
	return safefile.SyncDir(o.dir)
}
