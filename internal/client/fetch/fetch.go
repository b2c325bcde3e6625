// Package fetch downloads a POP3 account, or a folder of an IMAP account, into a local archive
// (Maildir or mbox): the engine of `petrel fetch`. This comment describes POP3; imap.go says
// how the IMAP source keeps the same rules.
//
// The safety ordering (the rule this package exists for): a message is deleted on the server
// only after it is written and fsynced locally AND recorded in the state file. One run is:
//
//  1. Lock the account's state file (flock; a second run of the same account fails at once).
//  2. Connect, verify TLS, log in; UIDL and LIST.
//  3. Recovery: messages on the server that the state does not know but whose tag is in the
//     archive (a run killed between writing the archive and writing the state) are recorded
//     as archived, not downloaded again.
//  4. Download the rest in batches: each message goes into the archive and is fsynced; at the
//     end of a batch the archive is committed (Maildir: fsync of new/; mbox: append, fsync),
//     then the state is written atomically, and only then are the batch's messages marked
//     with DELE (if the mode deletes them now).
//  5. DELE the older archived messages whose time has come (mode delete, or keep-days).
//  6. QUIT: the server removes the marked messages (RFC 1939 §6). Any failure before QUIT
//     closes the connection without QUIT, and the server deletes nothing.
//
// Whatever point a run is interrupted at (a network drop, kill -9, a full disk), the next run
// finds every message either in the state (skipped, deleted when due) or in the archive by
// its tag (recovered), or on the server (downloaded); a message is never deleted without being
// in the archive, and never archived twice.
//
// The tag of a message is a digest of the account and its unique-id. Without UIDL (optional
// in RFC 1939) the unique-id is replaced by a digest of the message's header (TOP n 0) and
// size; with neither UIDL nor TOP, mode delete still works (each message is deleted right
// after it is archived, an interruption can produce a duplicate) and the keep modes are refused.
package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"petrel/internal/client/wire"
	"strconv"
	"time"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/oauth"
	"petrel/internal/client/pop3client"
)

// Options tunes a run.
type Options struct {
	DryRun bool             // connect and report what would happen; change nothing
	Now    func() time.Time // the clock for keep-days; default time.Now
	// Progress, if set, is called after each message download.
	Progress func(Progress)
	// BatchSize is the number of messages per commit (default 1000); BatchBytes bounds the
	// bytes (default 64 MiB). A batch also ends after BatchTime (default 5s). The size of a
	// batch does not affect safety (an interrupted batch is recovered from the archive by
	// tag); it bounds how long deletions wait and how often the state file is rewritten.
	BatchSize  int
	BatchBytes int64
	BatchTime  time.Duration
	// Tokens gives the access tokens of an account that logs in with OAuth (default:
	// oauth.For the account).
	Tokens oauth.Tokens
}

// Progress reports the advance of one account's download.
type Progress struct {
	Account              string
	Done, Total          int   // messages downloaded / to download in this run
	DoneBytes, TotalSize int64 // their bytes as announced by LIST
}

// Result is the summary of one account.
type Result struct {
	Account    string
	OnServer   int   // messages in the maildrop at login
	New        int   // not archived before this run
	Downloaded int   // archived in this run
	Bytes      int64 // bytes downloaded
	Recovered  int   // found in the archive after an interrupted run
	Deleted    int   // removed from the server (confirmed by QUIT)
	Kept       int   // archived and left on the server
	Notes      []string
}

// Account runs one fetch of account a, from its [pop3] or its [imap] source (imap.go). The
// error is a *LocalError when the archive or the state could not be written, a
// *pop3client.Error or an *imap.Error for a refusal by the server, or a network error.
func Account(ctx context.Context, a *clientconf.Account, o Options) (Result, error) {
	res := Result{Account: a.Name}
	o = o.withDefaults()
	if a.IMAP != nil {
		r := &imapRun{a: a, m: a.IMAP, o: o, res: &res}
		return res, r.run(ctx)
	}
	if a.POP3 == nil {
		return res, fmt.Errorf("account %s has neither a [pop3] nor an [imap] table", a.Name)
	}
	r := &run{a: a, p: a.POP3, o: o, res: &res, server: a.User + "@" + a.POP3.Host}
	err := r.run(ctx)
	return res, err
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 64 << 20
	}
	if o.BatchTime <= 0 {
		o.BatchTime = 5 * time.Second
	}
	return o
}

type run struct {
	a      *clientconf.Account
	p      *clientconf.POP3
	o      Options
	res    *Result
	server string
	c      *pop3client.Client
	st     *state
	ar     archive
	marked map[int]bool // message numbers marked with DELE in this session
}

// message is one message of the maildrop.
type message struct {
	num  int
	size int64
	uid  string // unique-id, or "hdr:" digest without UIDL, or "" if there is no identity
}

func (r *run) note(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
}

// lockState locks the state file at path (a second run of the same account fails at once)
// unless dryRun, then loads it. The caller calls unlock when the run ends.
func lockState(path, server string, dryRun bool) (st *state, unlock func(), err error) {
	unlock = func() {}
	if !dryRun {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, nil, local(err)
		}
		if unlock, err = lockFile(path + ".lock"); err != nil {
			return nil, nil, local(err)
		}
	}
	if st, err = loadState(path, server); err != nil {
		unlock()
		return nil, nil, local(err)
	}
	return st, unlock, nil
}

func (r *run) run(ctx context.Context) error {
	st, unlock, err := lockState(r.p.State, r.server, r.o.DryRun)
	if err != nil {
		return err
	}
	defer unlock()
	r.st = st

	if err := oauth.Connect(ctx, r.a, r.o.Tokens, func(secret string) error { return r.connect(ctx, secret) }); err != nil {
		return err
	}
	defer r.c.Close() // without QUIT: after an error nothing is deleted

	msgs, err := r.listing()
	if err != nil {
		return err
	}
	r.res.OnServer = len(msgs)

	if !r.o.DryRun {
		if err := r.openArchive(); err != nil {
			return local(err)
		}
		defer r.ar.Close()
	}

	// Forget unique-ids that left the server: the state does not grow forever.
	onServer := map[string]bool{}
	for _, m := range msgs {
		onServer[m.uid] = true
	}
	changed := false
	for uid := range r.st.Seen {
		if !onServer[uid] {
			delete(r.st.Seen, uid)
			changed = true
		}
	}

	var todo []message
	for _, m := range msgs {
		if _, ok := r.st.Seen[m.uid]; !ok || m.uid == "" {
			todo = append(todo, m)
		}
	}
	r.res.New = len(todo)
	if !r.o.DryRun && len(todo) > 0 {
		if todo, err = r.recover(todo); err != nil {
			return local(err)
		}
		changed = changed || r.res.Recovered > 0
	}
	if changed && !r.o.DryRun {
		if err := r.saveState(); err != nil {
			return local(err)
		}
	}

	// Older messages whose time has come; they are safely archived already.
	var due []int
	for _, m := range msgs {
		if _, ok := r.st.Seen[m.uid]; ok && m.uid != "" && r.deleteNow(m.uid) {
			due = append(due, m.num)
		}
	}

	if r.o.DryRun {
		var total int64
		for _, m := range todo {
			total += m.size
		}
		r.note("dry run: would download %d messages (%d bytes) and delete %d", len(todo), total, len(due)+r.countDueAfterDownload(todo))
		return r.c.Quit() // nothing was marked: QUIT changes nothing
	}

	if err := r.c.DeleMany(due); err != nil {
		return err
	}
	r.marked = map[int]bool{}
	for _, n := range due {
		r.marked[n] = true
	}
	err = r.download(todo)
	var refused *refusedError
	if err != nil && !errors.As(err, &refused) {
		return err
	}
	// Even if some messages were refused, the others are archived: commit their deletion.
	if qerr := r.c.Quit(); qerr != nil {
		return fmt.Errorf("QUIT failed, messages marked for deletion may still be on the server: %w", qerr)
	}
	r.res.Deleted = len(r.marked)
	for _, m := range msgs {
		if _, ok := r.st.Seen[m.uid]; ok && !r.marked[m.num] {
			r.res.Kept++
		}
	}
	return err
}

// refusedError reports messages the server would not send (RETR -ERR); the run goes on.
type refusedError struct{ msgs []string }

func (e *refusedError) Error() string {
	return fmt.Sprintf("the server refused to send %d messages: %v", len(e.msgs), e.msgs)
}

func (r *run) connect(ctx context.Context, pass string) error {
	tlsConf, err := r.p.TLSConfig()
	if err != nil {
		return err
	}
	mode := map[string]pop3client.TLSMode{"tls": pop3client.ImplicitTLS, "starttls": pop3client.StartTLS, "plain": pop3client.NoTLS}[r.p.TLS]
	c, err := pop3client.Dial(ctx, r.p.Addr(), pop3client.Options{TLS: mode, TLSConf: tlsConf, Timeout: r.a.Timeout.Duration})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", r.p.Addr(), err)
	}
	mech := map[string]string{"": pop3client.MechAuto, "scram-sha-256": pop3client.MechSCRAM, "plain": pop3client.MechPlain, "apop": pop3client.MechAPOP, "user": pop3client.MechUser,
		"oauthbearer": wire.MechOAuthBearer, "xoauth2": wire.MechXOAuth2}[r.p.Auth]
	if r.a.UsesToken() {
		err = c.LoginToken(mech, r.a.User, pass, r.p.Host, r.p.Port, r.p.AllowPlaintext)
	} else {
		err = c.Login(mech, r.a.User, pass, r.p.AllowPlaintext)
	}
	if err != nil {
		c.Close()
		return fmt.Errorf("login to %s as %s: %w", r.p.Addr(), r.a.User, err)
	}
	r.c = c
	return nil
}

// listing returns the maildrop with an identity for each message.
func (r *run) listing() ([]message, error) {
	sizes, err := r.c.List()
	if err != nil {
		return nil, err
	}
	msgs := make([]message, len(sizes))
	byNum := map[int]int{}
	for i, s := range sizes {
		msgs[i] = message{num: s.Num, size: s.Size}
		byNum[s.Num] = i
	}
	uids, err := r.c.UIDL()
	if err == nil {
		for _, u := range uids {
			if i, ok := byNum[u.Num]; ok {
				msgs[i].uid = u.UID
			}
		}
		for _, m := range msgs {
			if m.uid == "" {
				return nil, fmt.Errorf("%w: UIDL lacks message %d", wire.ErrProtocol, m.num)
			}
		}
		return msgs, nil
	}
	if !errors.Is(err, pop3client.ErrNoUIDL) {
		return nil, err
	}
	// Fallback: a digest of the header (TOP n 0) and the size identifies a message.
	seen := map[string]int{}
	for i := range msgs {
		var hdr bytes.Buffer
		if _, err := r.c.Top(msgs[i].num, 0, &hdr); err != nil {
			var pe *pop3client.Error
			if !errors.As(err, &pe) {
				return nil, err
			}
			if r.p.Mode != clientconf.ModeDelete {
				return nil, fmt.Errorf("the server supports neither UIDL nor TOP, so mode %q cannot tell new messages from old; use mode = \"delete\"", r.p.Mode)
			}
			r.note("the server supports neither UIDL nor TOP: messages are deleted right after download and an interrupted run may download one twice")
			for j := range msgs {
				msgs[j].uid = ""
			}
			return msgs, nil
		}
		sum := sha256.Sum256(append(hdr.Bytes(), strconv.FormatInt(msgs[i].size, 10)...))
		id := "hdr:" + hex.EncodeToString(sum[:16])
		// Identical headers and size (a duplicate delivery): number them in maildrop order.
		if n := seen[id]; n > 0 {
			seen[id]++
			id += "#" + strconv.Itoa(n+1)
		} else {
			seen[id] = 1
		}
		msgs[i].uid = id
	}
	r.note("the server does not support UIDL: messages are identified by a digest of their header (TOP)")
	return msgs, nil
}

// tag is the archive's name for a message of this account.
func (r *run) tag(uid string) string {
	sum := sha256.Sum256([]byte(r.server + "\x00" + uid))
	return hex.EncodeToString(sum[:10])
}

func (r *run) openArchive() error {
	var err error
	r.ar, err = openArchive(&r.p.Local, r.st)
	return err
}

// openArchive opens the archive of l; st tells an mbox where recovery starts looking.
func openArchive(l *clientconf.Local, st *state) (archive, error) {
	if l.Format == "mbox" {
		mb, err := openMbox(l.Archive)
		if err != nil {
			return nil, err
		}
		mb.scanFrom = st.MboxSize
		return mb, nil
	}
	return openMaildir(l.Archive)
}

// recover records the messages of todo that an interrupted run archived without recording
// them, and returns the others.
func (r *run) recover(todo []message) ([]message, error) {
	want := map[string]bool{}
	for _, m := range todo {
		if m.uid != "" {
			want[r.tag(m.uid)] = true
		}
	}
	found, err := r.ar.Present(want)
	if err != nil {
		return nil, err
	}
	if len(found) > 0 {
		if err := r.ar.Sync(); err != nil {
			return nil, err
		}
	}
	now := r.o.Now().Unix()
	var rest []message
	for _, m := range todo {
		if m.uid != "" && found[r.tag(m.uid)] {
			r.st.Seen[m.uid] = now
			r.res.Recovered++
			continue
		}
		rest = append(rest, m)
	}
	return rest, nil
}

// deleteNow says whether an archived message is to be deleted from the server now.
func (r *run) deleteNow(uid string) bool {
	return dueNow(&r.p.Local, r.st, r.o.Now(), uid)
}

// dueNow says whether the archived message recorded under key in st is to leave the server at
// time now: always in mode delete, keep_days after its first download in mode keep-days.
func dueNow(l *clientconf.Local, st *state, now time.Time, key string) bool {
	switch l.Mode {
	case clientconf.ModeDelete:
		return true
	case clientconf.ModeKeepDays:
		first, ok := st.firstSeen(key)
		return ok && !now.Before(first.Add(time.Duration(l.KeepDays)*24*time.Hour))
	}
	return false
}

func (r *run) countDueAfterDownload([]message) int {
	if r.p.Mode == clientconf.ModeDelete {
		return r.res.New
	}
	return 0
}

func (r *run) saveState() error { return saveState(r.st, r.ar) }

// saveState writes st, with the size of an mbox archive after its last commit.
func saveState(st *state, ar archive) error {
	if mb, ok := ar.(*mbox); ok {
		st.MboxSize = mb.size
	}
	return st.save()
}

// download archives the messages of todo in batches, marking for deletion those due.
func (r *run) download(todo []message) error {
	var total int64
	for _, m := range todo {
		total += m.size
	}
	prog := Progress{Account: r.a.Name, Total: len(todo), TotalSize: total}
	var batch []message
	var batchBytes int64
	batchStart := time.Now()

	// commit makes the batch durable, records it, then marks what is due.
	commit := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := r.ar.Commit(); err != nil {
			return local(err)
		}
		now := r.o.Now().Unix()
		for _, m := range batch {
			if m.uid != "" {
				r.st.Seen[m.uid] = now
			}
		}
		if err := r.saveState(); err != nil {
			return local(err)
		}
		var due []int
		for _, m := range batch {
			if m.uid == "" || r.deleteNow(m.uid) {
				due = append(due, m.num)
			}
		}
		batch, batchBytes, batchStart = batch[:0], 0, time.Now()
		if err := r.c.DeleMany(due); err != nil {
			return err
		}
		for _, n := range due {
			r.marked[n] = true
		}
		return nil
	}

	// With PIPELINING the next RETR is sent before the current message is fsynced, so the
	// server's work and the network overlap our disk; no command but that one RETR is ever in
	// flight, so commit (which sends DELE) only runs when nothing is outstanding.
	pipelined := r.c.Pipelining()
	inFlight := false
	sendNext := func(i int) error {
		if !pipelined || i >= len(todo) {
			return nil
		}
		if err := r.c.SendRetr(todo[i].num); err != nil {
			return err
		}
		inFlight = true
		return nil
	}
	// drain reads the answer to a RETR sent ahead when the run stops early, so that the
	// session stays in step for QUIT.
	drain := func() {
		if inFlight {
			r.c.RecvRetr(io.Discard)
			inFlight = false
		}
	}
	if err := sendNext(0); err != nil {
		return err
	}

	var failed []string
	for i, m := range todo {
		tag := r.tag(m.uid)
		if m.uid == "" {
			tag = "none"
		}
		p, err := r.ar.Begin(tag)
		if err != nil {
			drain()
			return local(err)
		}
		var n int64
		if pipelined {
			n, err = r.c.RecvRetr(p)
			inFlight = false
		} else {
			n, err = r.c.Retr(m.num, p)
		}
		if err != nil {
			p.Abort()
			var pe *pop3client.Error
			var le *LocalError
			switch {
			case errors.As(err, &pe):
				// The server refused this one message; the others can still be archived.
				failed = append(failed, fmt.Sprintf("%d (%s)", m.num, pe.Text))
				if err := sendNext(i + 1); err != nil {
					return errors.Join(err, commit())
				}
				continue
			case r.c.Err() == nil:
				// The session is fine, so the write failed: a local error.
				return errors.Join(local(err), commit())
			case errors.As(err, &le):
				return err
			}
			// The connection broke: keep what is complete, then report.
			if cerr := commit(); cerr != nil {
				var le *LocalError
				if errors.As(cerr, &le) {
					return errors.Join(err, cerr)
				}
			}
			return err
		}
		batch = append(batch, m)
		batchBytes += m.size
		due := m.uid == "" || len(batch) >= r.o.BatchSize || batchBytes >= r.o.BatchBytes || time.Since(batchStart) >= r.o.BatchTime
		if !due {
			if err := sendNext(i + 1); err != nil {
				p.Abort()
				return err
			}
		}
		if ferr := p.Finish(); ferr != nil {
			batch = batch[:len(batch)-1]
			drain()
			return local(ferr)
		}
		r.res.Downloaded++
		r.res.Bytes += n
		prog.Done++
		prog.DoneBytes += m.size
		if r.o.Progress != nil {
			r.o.Progress(prog)
		}
		if due {
			if err := commit(); err != nil {
				return err
			}
			if err := sendNext(i + 1); err != nil {
				return err
			}
		}
	}
	if err := commit(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return &refusedError{failed}
	}
	return nil
}
