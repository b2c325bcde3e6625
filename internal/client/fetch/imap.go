package fetch

// The IMAP source: one folder of an IMAP server downloaded into the same archive, with the same
// safety ordering as POP3 (package comment): a message leaves the server only after it is in
// the archive, fsynced, and recorded in the state file. What differs from POP3:
//
//   - Identity. A message is its folder's UIDVALIDITY plus its UID (RFC 9051 §2.3.1.1). The
//     state keeps the UIDVALIDITY and the UIDs archived; the tag is a digest of the account,
//     the folder, the UIDVALIDITY and the UID, so recovery after an interrupted run finds the
//     messages in the archive exactly as for POP3.
//   - UIDVALIDITY changes (the server renumbered the folder: a rebuilt index, a migration).
//     The old UIDs mean nothing any more; downloading everything again would duplicate the
//     archive, and refusing would need the user to decide what cannot be seen from outside.
//     So the state also keeps, for each archived message, a digest of its header and size; after
//     a change the header of every message of the folder is fetched (BODY.PEEK[HEADER]), and a
//     message whose digest matches an archived one is recorded as archived under its new UID,
//     with its first-seen time (matches are counted: two identical messages on the server need
//     two archived ones). The others are downloaded. A false match needs the same header bytes
//     and size, that is a duplicate delivery; a message whose header the server rewrote is
//     downloaded again: a duplicate, never a loss. Result.Notes says what happened.
//   - Nothing changes on the server in mode keep (nor in a dry run): the folder is opened with
//     EXAMINE (read-only, RFC 9051 §6.3.3) and bodies are read with BODY.PEEK[], which does not
//     set \Seen (§6.4.5).
//   - Deletion follows each committed batch: UID STORE +FLAGS.SILENT (\Deleted), then UID
//     EXPUNGE of exactly those UIDs (UIDPLUS, RFC 4315 §2.1). Without UIDPLUS there is only
//     EXPUNGE, which removes every \Deleted message, also those another client marked and might
//     still undelete; it is sent only when UID SEARCH DELETED finds no message but ours, else
//     ours stay marked (a later run, or the other client's expunge, removes them) and a note
//     says so. A run killed between STORE and EXPUNGE leaves archived messages marked; the next
//     run expunges them with the others that are due.
//   - keep-days counts from the first download, as for POP3, not from INTERNALDATE: APPEND and
//     migrations set INTERNALDATE freely (years back), which would delete a message from the
//     server as soon as it is first archived, defeating what keep-days is for. INTERNALDATE is
//     still fetched: it dates the mbox "From " line and the Maildir file.
//   - Batches are UID FETCH commands of at most BatchSize messages and BatchBytes bytes (the
//     sizes are known from the listing); each is committed when its response is complete.
//     BatchTime does not apply.
//   - Deadlines. go-imap's client reads in a goroutine of its own and sets fixed deadlines; the
//     connection is wrapped (deadlineConn) so that each read made while a command is
//     outstanding, and each write, has the account's timeout, and cancelling ctx closes it.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"petrel/internal/client/wire"
	"petrel/internal/lib/scram"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/oauth"
)

// imapRun is one fetch of an account's IMAP folder.
type imapRun struct {
	a   *clientconf.Account
	m   *clientconf.IMAP
	o   Options
	res *Result

	server  string // "imap:USER@HOST/FOLDER": the owner of the state, and part of every tag
	st      *state
	ar      archive
	conn    *deadlineConn
	ic      *imapConn // what the client reads and writes: conn, or TLS over it
	c       *imapclient.Client
	stopCtx func() bool // ends the watch that closes conn when ctx is cancelled

	wake      chan struct{}     // Idle: signalled when the server announces new messages; nil otherwise
	validity  uint32            // UIDVALIDITY of the selected folder
	uidPlus   bool              // the server has UID EXPUNGE (UIDPLUS or IMAP4rev2)
	noUIDPlus bool              // tests: act as if the server lacked UIDPLUS
	flagged   map[imap.UID]bool // marked \Deleted by this run and not expunged yet
	othersDel bool              // EXPUNGE was withheld: other messages were \Deleted too
}

// imsg is a message of the folder.
type imsg struct {
	uid  imap.UID
	size int64 // RFC822.SIZE
}

// got is a message downloaded and finished in the archive, not yet committed.
type got struct {
	uid    imap.UID
	digest string // headerDigest of the message
}

func (r *imapRun) note(format string, args ...any) {
	r.res.Notes = append(r.res.Notes, fmt.Sprintf(format, args...))
}

func key(uid imap.UID) string { return strconv.FormatUint(uint64(uid), 10) }

// tag is the archive's name for a message: a digest of account, folder, UIDVALIDITY and UID.
func (r *imapRun) tag(uid imap.UID) string {
	sum := sha256.Sum256([]byte(r.server + "\x00" + strconv.FormatUint(uint64(r.validity), 10) + "." + key(uid)))
	return hex.EncodeToString(sum[:10])
}

func (r *imapRun) run(ctx context.Context) error {
	r.server = "imap:" + r.a.User + "@" + r.m.Host + "/" + r.m.Folder
	r.flagged = map[imap.UID]bool{}
	st, unlock, err := lockState(r.m.State, r.server, r.o.DryRun)
	if err != nil {
		return err
	}
	defer unlock()
	r.st = st

	if err := oauth.Connect(ctx, r.a, r.o.Tokens, func(secret string) error { return r.connect(ctx, secret) }); err != nil {
		return err
	}
	defer r.close()
	err = r.sync()
	var refused *refusedError
	if err == nil || errors.As(err, &refused) {
		r.logout()
	}
	return err
}

// sync downloads what is new in the folder and removes what is due, on the open connection
// (which it leaves open, the folder selected). It fills r.res.
func (r *imapRun) sync() error {
	// Mode keep and dry runs change nothing, not even \Recent: EXAMINE (RFC 9051 §6.3.3).
	readOnly := r.m.Mode == clientconf.ModeKeep || r.o.DryRun
	var sel *imap.SelectData
	err := r.do(func() (err error) {
		sel, err = r.c.Select(r.m.Folder, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
		return err
	})
	if err != nil {
		return fmt.Errorf("open folder %q: %w", r.m.Folder, err)
	}
	if sel.UIDValidity == 0 {
		return fmt.Errorf("%w: no UIDVALIDITY for folder %q", wire.ErrProtocol, r.m.Folder)
	}
	r.validity = sel.UIDValidity
	msgs, err := r.listing(sel.NumMessages)
	if err != nil {
		return err
	}
	r.res.OnServer = len(msgs)

	if !r.o.DryRun {
		if r.ar, err = openArchive(&r.m.Local, r.st); err != nil {
			return local(err)
		}
		defer r.ar.Close()
	}

	changed := false
	if r.st.UIDValidity != r.validity {
		if r.st.UIDValidity != 0 && len(r.st.Seen) > 0 {
			if err := r.rematch(msgs); err != nil {
				return err
			}
		}
		r.st.UIDValidity = r.validity
		changed = true
	}

	// Forget UIDs that left the folder: the state does not grow forever.
	onServer := map[string]bool{}
	for _, m := range msgs {
		onServer[key(m.uid)] = true
	}
	for k := range r.st.Seen {
		if !onServer[k] {
			delete(r.st.Seen, k)
			delete(r.st.Headers, k)
			changed = true
		}
	}

	var todo []imsg
	for _, m := range msgs {
		if _, ok := r.st.Seen[key(m.uid)]; !ok {
			todo = append(todo, m)
		}
	}
	r.res.New = len(todo)
	if !r.o.DryRun && len(todo) > 0 {
		if todo, err = r.recover(todo); err != nil {
			return err
		}
		changed = changed || r.res.Recovered > 0
	}
	if changed && !r.o.DryRun {
		if err := saveState(r.st, r.ar); err != nil {
			return local(err)
		}
	}

	// Older messages whose time has come; they are safely archived already.
	var due []imap.UID
	for _, m := range msgs {
		if _, ok := r.st.Seen[key(m.uid)]; ok && r.due(m.uid) {
			due = append(due, m.uid)
		}
	}

	if r.o.DryRun {
		var total int64
		for _, m := range todo {
			total += m.size
		}
		del := len(due)
		if r.m.Mode == clientconf.ModeDelete {
			del += len(todo)
		}
		r.note("dry run: would download %d messages (%d bytes) and delete %d", len(todo), total, del)
		return nil
	}

	if err := r.remove(due); err != nil {
		return err
	}
	err = r.download(todo)
	var refused *refusedError
	if err != nil && !errors.As(err, &refused) {
		return err
	}
	if len(r.flagged) > 0 && r.othersDel {
		r.note("%d archived messages are marked \\Deleted but not expunged: the server lacks UIDPLUS (RFC 4315) and other messages of %q are marked \\Deleted too, which EXPUNGE would also remove; a later run expunges them", len(r.flagged), r.m.Folder)
	}
	r.res.Kept = len(r.st.Seen) - r.res.Deleted
	return err
}

func (r *imapRun) due(uid imap.UID) bool {
	return dueNow(&r.m.Local, r.st, r.o.Now(), key(uid))
}

// connect dials, secures and authenticates the connection.
func (r *imapRun) connect(ctx context.Context, pass string) error {
	tlsConf, err := r.m.TLSConfig()
	if err != nil {
		return err
	}
	addr := r.m.Addr()
	timeout := r.a.Timeout.Duration
	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	r.conn = &deadlineConn{Conn: raw, timeout: timeout}
	r.stopCtx = context.AfterFunc(ctx, func() { raw.Close() })
	fail := func(what string, err error) error {
		raw.Close() // first: the client's Close waits for its reader
		if r.c != nil {
			r.c.Close()
			r.c = nil
		}
		r.stopCtx()
		return fmt.Errorf("%s: %w", what, r.conn.explain(err))
	}
	r.conn.arm()
	defer r.conn.disarm()
	r.ic = &imapConn{Conn: r.conn}
	switch r.m.TLS {
	case "tls":
		conf := tlsConf.Clone()
		conf.NextProtos = []string{"imap"} // RFC 8314 §7.2 (ALPN "imap")
		tc := tls.Client(r.conn, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("TLS with "+addr, err)
		}
		r.ic.Conn = tc
	case "starttls":
		tc, err := startTLS(ctx, r.conn, tlsConf)
		if err != nil {
			return fail("STARTTLS with "+addr, err)
		}
		r.ic.Conn = tc
		// go-imap's client starts by reading a greeting; the server's came before TLS.
		r.ic.prefix = []byte("* OK greeting received before STARTTLS\r\n")
	}
	var opts *imapclient.Options
	if r.wake != nil {
		// Idle: an EXISTS outside SELECT means new mail (RFC 9051 §7.4.1); the handler runs
		// in the client's reader and must not block.
		opts = &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case r.wake <- struct{}{}:
					default:
					}
				}
			},
		}}
	}
	r.c = imapclient.New(r.ic, opts)
	if err := r.c.WaitGreeting(); err != nil {
		return fail("greeting of "+addr, err)
	}
	switch st := r.c.State(); {
	case st == imap.ConnStateNotAuthenticated:
		if err := r.login(pass); err != nil {
			return fail("login to "+addr+" as "+r.a.User, err)
		}
	case st == imap.ConnStateAuthenticated && r.m.TLS != "plain":
		// PREAUTH over TLS: the server knows us already (a client certificate, say).
	default:
		return fail("greeting of "+addr, fmt.Errorf("%w: state %v after the greeting", wire.ErrProtocol, st))
	}
	caps := r.c.Caps()
	r.uidPlus = caps.Has(imap.CapUIDPlus) && !r.noUIDPlus
	return nil
}

// login authenticates with the configured mechanism or the best one offered: SCRAM-SHA-256
// (the password never crosses the wire and the server proves it knows it), then AUTHENTICATE
// PLAIN, then LOGIN; the last two only over TLS unless allow_plaintext.
func (r *imapRun) login(pass string) error {
	caps := r.c.Caps()
	offered := func(mech string) bool {
		return slices.ContainsFunc(caps.AuthMechanisms(), func(m string) bool { return strings.EqualFold(m, mech) })
	}
	if r.a.UsesToken() {
		return r.loginToken(pass, offered)
	}
	mech := r.m.Auth
	if mech == "" {
		switch {
		case offered("SCRAM-SHA-256"):
			mech = "scram-sha-256"
		case offered("PLAIN"):
			mech = "plain"
		default:
			mech = "login"
		}
	}
	if mech != "scram-sha-256" && r.m.TLS == "plain" && !r.m.AllowPlaintext {
		return errors.New("the server offers no SCRAM-SHA-256, and the password may not be sent unencrypted (allow_plaintext)")
	}
	switch mech {
	case "scram-sha-256":
		sc := scram.NewClient(r.a.User, pass)
		r.ic.inAuth.Store(true)
		err := r.c.Authenticate(sc)
		r.ic.inAuth.Store(false)
		if err != nil {
			return err
		}
		if !sc.ServerVerified() {
			return errors.New("SCRAM-SHA-256: the server did not prove that it knows the password")
		}
		return nil
	case "plain":
		return r.c.Authenticate(sasl.NewPlainClient("", r.a.User, pass))
	}
	if caps.Has(imap.CapLoginDisabled) {
		return errors.New("the server disabled LOGIN (LOGINDISABLED) and offers no usable mechanism")
	}
	return r.c.Login(r.a.User, pass).Wait()
}

// loginToken authenticates with an OAuth access token: the configured mechanism, or
// OAUTHBEARER when offered, else XOAUTH2. A bearer token is as good as a password: not
// without TLS unless allow_plaintext.
func (r *imapRun) loginToken(token string, offered func(string) bool) error {
	if r.m.TLS == "plain" && !r.m.AllowPlaintext {
		return errors.New("an OAuth token may not be sent unencrypted (allow_plaintext)")
	}
	mech := strings.ToUpper(r.m.Auth)
	if mech == "" {
		mech = wire.MechXOAuth2
		if offered(wire.MechOAuthBearer) {
			mech = wire.MechOAuthBearer
		}
	}
	sc := wire.NewOAuthClient(mech, r.a.User, token, r.m.Host, r.m.Port)
	r.ic.inAuth.Store(true)
	err := r.c.Authenticate(sc)
	r.ic.inAuth.Store(false)
	return sc.Refused(err)
}

// do runs f, which sends commands and waits for their answers, with read deadlines armed.
func (r *imapRun) do(f func() error) error {
	r.conn.arm()
	defer r.conn.disarm()
	return r.conn.explain(f())
}

// logout ends the session politely; the outcome does not matter any more.
func (r *imapRun) logout() {
	r.do(func() error { return r.c.Logout().Wait() })
}

func (r *imapRun) close() {
	r.stopCtx()
	r.conn.Conn.Close() // first: the client's Close waits for its reader, which must not block
	r.c.Close()
}

// listing returns the UIDs and sizes of the folder's messages, in UID order.
func (r *imapRun) listing(n uint32) ([]imsg, error) {
	if n == 0 {
		return nil, nil
	}
	var msgs []imsg
	err := r.do(func() error {
		cmd := r.c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, RFC822Size: true})
		for m := cmd.Next(); m != nil; m = cmd.Next() {
			buf, err := m.Collect()
			if err != nil {
				r.abort(cmd)
				return err
			}
			if buf.UID != 0 {
				msgs = append(msgs, imsg{uid: buf.UID, size: buf.RFC822Size})
			}
		}
		return cmd.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("list folder %q: %w", r.m.Folder, err)
	}
	slices.SortFunc(msgs, func(a, b imsg) int { return cmp.Compare(a.uid, b.uid) })
	return msgs, nil
}

// abort gives up a FETCH in the middle: the connection is closed first, so that draining the
// command (which the client needs before it can close) fails fast instead of downloading.
func (r *imapRun) abort(cmd *imapclient.FetchCommand) {
	r.conn.Conn.Close()
	cmd.Close()
}

// rematch maps the state to the folder's new UIDVALIDITY by header digests (see the top).
func (r *imapRun) rematch(msgs []imsg) error {
	old := map[string][]int64{} // digest -> first-seen times of archived messages
	for k, d := range r.st.Headers {
		if t, ok := r.st.Seen[k]; ok {
			old[d] = append(old[d], t)
		}
	}
	for _, ts := range old {
		slices.Sort(ts)
	}
	uids := make([]imap.UID, len(msgs))
	for i, m := range msgs {
		uids[i] = m.uid
	}
	digests, err := r.headerDigests(uids)
	if err != nil {
		return fmt.Errorf("UIDVALIDITY changed; reading the headers to recognize archived messages: %w", err)
	}
	seen, headers := map[string]int64{}, map[string]string{}
	for _, m := range msgs {
		d, ok := digests[m.uid]
		if !ok || len(old[d]) == 0 {
			continue
		}
		seen[key(m.uid)], old[d] = old[d][0], old[d][1:]
		headers[key(m.uid)] = d
	}
	r.note("the UIDVALIDITY of %q changed from %d to %d (the server renumbered its messages): %d of its %d messages were recognized as archived by a digest of their header and size, the others are downloaded",
		r.m.Folder, r.st.UIDValidity, r.validity, len(seen), len(msgs))
	r.st.Seen, r.st.Headers = seen, headers
	return nil
}

// headerDigests fetches BODY.PEEK[HEADER] and RFC822.SIZE of uids and digests them.
func (r *imapRun) headerDigests(uids []imap.UID) (map[imap.UID]string, error) {
	out := map[imap.UID]string{}
	const chunk = 1000
	for start := 0; start < len(uids); start += chunk {
		set := imap.UIDSetNum(uids[start:min(start+chunk, len(uids))]...)
		err := r.do(func() error {
			cmd := r.c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true,
				BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}}})
			for m := cmd.Next(); m != nil; m = cmd.Next() {
				var uid imap.UID
				var size int64
				var hdr prefixWriter
				for item := m.Next(); item != nil; item = m.Next() {
					switch it := item.(type) {
					case imapclient.FetchItemDataUID:
						uid = it.UID
					case imapclient.FetchItemDataRFC822Size:
						size = it.Size
					case imapclient.FetchItemDataBodySection:
						if it.Literal != nil {
							if _, err := io.Copy(&hdr, it.Literal); err != nil {
								r.abort(cmd)
								return err
							}
						}
					}
				}
				if uid != 0 {
					out[uid] = headerDigest(hdr.b, size)
				}
			}
			return cmd.Close()
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// recover records the messages of todo that an interrupted run archived without recording
// them, and returns the others.
func (r *imapRun) recover(todo []imsg) ([]imsg, error) {
	want := map[string]bool{}
	for _, m := range todo {
		want[r.tag(m.uid)] = true
	}
	found, err := r.ar.Present(want)
	if err != nil {
		return nil, local(err)
	}
	var rest []imsg
	var uids []imap.UID
	for _, m := range todo {
		if found[r.tag(m.uid)] {
			uids = append(uids, m.uid)
		} else {
			rest = append(rest, m)
		}
	}
	if len(uids) == 0 {
		return rest, nil
	}
	if err := r.ar.Sync(); err != nil {
		return nil, local(err)
	}
	// Their header digests, so that they too survive a UIDVALIDITY change.
	digests, err := r.headerDigests(uids)
	if err != nil {
		return nil, err
	}
	now := r.o.Now().Unix()
	for _, u := range uids {
		r.st.Seen[key(u)] = now
		if d, ok := digests[u]; ok {
			r.st.Headers[key(u)] = d
		}
		r.res.Recovered++
	}
	return rest, nil
}

// download archives the messages of todo, one UID FETCH per batch; after each batch is
// committed, the messages that are due are deleted.
func (r *imapRun) download(todo []imsg) error {
	var total int64
	for _, m := range todo {
		total += m.size
	}
	prog := Progress{Account: r.a.Name, Total: len(todo), TotalSize: total}
	var failed []string
	for start := 0; start < len(todo); {
		end := start
		var bytes int64
		for end < len(todo) && end-start < r.o.BatchSize && (end == start || bytes+todo[end].size <= r.o.BatchBytes) {
			bytes += todo[end].size
			end++
		}
		batch := todo[start:end]
		start = end

		done, ferr := r.fetchBatch(batch, &prog)
		// What was finished is committed whatever happened next.
		if err := r.commit(done); err != nil {
			return errors.Join(ferr, err)
		}
		var le *LocalError
		var ie *imap.Error
		switch {
		case ferr == nil:
		case errors.As(ferr, &le):
			return ferr
		case errors.As(ferr, &ie) && ie.Type == imap.StatusResponseTypeNo:
			// The server would not send some messages; the others can still be archived.
			failed = append(failed, fmt.Sprintf("%s (%s)", missing(batch, done), ie.Text))
		default:
			return ferr // the connection broke: keep what is committed, delete nothing more
		}
		if ferr == nil {
			if gone := missing(batch, done); gone != "" {
				r.note("UIDs %s disappeared from the server before they were downloaded", gone)
			}
		}
		var due []imap.UID
		for _, g := range done {
			if r.due(g.uid) {
				due = append(due, g.uid)
			}
		}
		if err := r.remove(due); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return &refusedError{failed}
	}
	return nil
}

// missing lists the UIDs of batch that are not in done.
func missing(batch []imsg, done []got) string {
	have := map[imap.UID]bool{}
	for _, g := range done {
		have[g.uid] = true
	}
	var set imap.UIDSet
	for _, m := range batch {
		if !have[m.uid] {
			set.AddNum(m.uid)
		}
	}
	return set.String()
}

// fetchBatch downloads batch with one UID FETCH and finishes each message in the archive. It
// returns the messages finished, also when it fails.
func (r *imapRun) fetchBatch(batch []imsg, prog *Progress) ([]got, error) {
	uids := make([]imap.UID, len(batch))
	sizes := map[imap.UID]int64{}
	for i, m := range batch {
		uids[i] = m.uid
		sizes[m.uid] = m.size
	}
	var done []got
	err := r.do(func() error {
		cmd := r.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, InternalDate: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		for m := cmd.Next(); m != nil; m = cmd.Next() {
			g, n, err := r.receive(m)
			if err != nil {
				r.abort(cmd)
				return err
			}
			if g.uid == 0 {
				continue // no body: not a message we asked for
			}
			done = append(done, g)
			r.res.Downloaded++
			r.res.Bytes += n
			prog.Done++
			prog.DoneBytes += sizes[g.uid]
			if r.o.Progress != nil {
				r.o.Progress(*prog)
			}
		}
		return cmd.Close()
	})
	return done, err
}

// receive writes one FETCH response into the archive. go-imap hands out the response's items
// in the order of the wire; it needs the UID before the literal (it asks for UID first), so the
// tag is known when the body starts.
func (r *imapRun) receive(m *imapclient.FetchMessageData) (got, int64, error) {
	var uid imap.UID
	var date time.Time
	var p pending
	var n int64
	size := int64(-1)
	var hdr prefixWriter
	for item := m.Next(); item != nil; item = m.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = it.UID
		case imapclient.FetchItemDataRFC822Size:
			size = it.Size
		case imapclient.FetchItemDataInternalDate:
			date = it.Time
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil || uid == 0 || p != nil {
				continue
			}
			var err error
			if p, err = r.ar.Begin(r.tag(uid)); err != nil {
				return got{}, 0, local(err)
			}
			w := &errWriter{w: p}
			n, err = io.Copy(io.MultiWriter(w, &hdr), it.Literal)
			if err == nil && n != it.Literal.Size() {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				p.Abort()
				if w.err != nil {
					return got{}, 0, local(w.err)
				}
				return got{}, 0, err
			}
		}
	}
	if p == nil {
		return got{}, 0, nil
	}
	if !date.IsZero() {
		p.SetDate(date)
	}
	if err := p.Finish(); err != nil {
		return got{}, 0, local(err)
	}
	if size < 0 {
		size = n
	}
	// The digest uses RFC822.SIZE, as after a UIDVALIDITY change (headerDigests).
	return got{uid: uid, digest: headerDigest(hdr.b, size)}, n, nil
}

// commit makes the finished messages durable in the archive, then records them in the state.
func (r *imapRun) commit(done []got) error {
	if len(done) == 0 {
		return nil
	}
	if err := r.ar.Commit(); err != nil {
		return local(err)
	}
	now := r.o.Now().Unix()
	for _, g := range done {
		r.st.Seen[key(g.uid)] = now
		r.st.Headers[key(g.uid)] = g.digest
	}
	return local(saveState(r.st, r.ar))
}

// remove deletes archived messages from the folder (see the top for why EXPUNGE is careful).
func (r *imapRun) remove(uids []imap.UID) error {
	if len(uids) == 0 {
		return nil
	}
	set := imap.UIDSetNum(uids...)
	err := r.do(func() error {
		return r.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	})
	if err != nil {
		return fmt.Errorf("mark archived messages \\Deleted: %w", err)
	}
	for _, u := range uids {
		r.flagged[u] = true
	}
	if r.uidPlus {
		return r.expunge(func() *imapclient.ExpungeCommand { return r.c.UIDExpunge(set) }, uids)
	}
	var marked []imap.UID
	err = r.do(func() error {
		data, err := r.c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
		if err == nil {
			marked = data.AllUIDs()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("search \\Deleted messages: %w", err)
	}
	for _, u := range marked {
		if !r.flagged[u] {
			r.othersDel = true
			return nil
		}
	}
	// Another client could mark a message between SEARCH and EXPUNGE; it asked for its
	// deletion then, so EXPUNGE does what that client wanted anyway.
	all := make([]imap.UID, 0, len(r.flagged))
	for u := range r.flagged {
		all = append(all, u)
	}
	return r.expunge(r.c.Expunge, all)
}

func (r *imapRun) expunge(send func() *imapclient.ExpungeCommand, uids []imap.UID) error {
	var n int
	err := r.do(func() error {
		seqs, err := send().Collect()
		n = len(seqs)
		return err
	})
	r.res.Deleted += n
	if err != nil {
		return fmt.Errorf("expunge archived messages: %w", err)
	}
	for _, u := range uids {
		delete(r.flagged, u)
	}
	return nil
}

// maxDigestPrefix bounds what is kept of a message to digest its header.
const maxDigestPrefix = 64 << 10

// prefixWriter keeps the first maxDigestPrefix bytes written to it.
type prefixWriter struct{ b []byte }

func (w *prefixWriter) Write(p []byte) (int, error) {
	if room := maxDigestPrefix - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// headerDigest identifies a message by its header (up to and including the empty line that
// ends it, within the first maxDigestPrefix bytes) and its size. prefix is the start of the
// message (BODY[]) or its header (BODY[HEADER]): both give the same digest.
func headerDigest(prefix []byte, size int64) string {
	h := prefix
	for i := 0; i < len(prefix); i++ {
		if prefix[i] != '\n' {
			continue
		}
		if bytes.HasPrefix(prefix[i+1:], []byte("\r\n")) {
			h = prefix[:i+3]
			break
		}
		if bytes.HasPrefix(prefix[i+1:], []byte("\n")) {
			h = prefix[:i+2]
			break
		}
	}
	d := sha256.New()
	d.Write(h)
	d.Write([]byte("\x00" + strconv.FormatInt(size, 10)))
	return hex.EncodeToString(d.Sum(nil)[:16])
}

// errWriter remembers a write error, to tell a local failure from a network one in io.Copy.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// startTLS reads the greeting and upgrades the connection with STARTTLS (RFC 9051 §6.2.1).
// It is done here rather than by go-imap so that imapConn sits above TLS. Lines are read a byte
// at a time: nothing the server sent before the handshake can be taken for protected data.
func startTLS(ctx context.Context, c net.Conn, conf *tls.Config) (*tls.Conn, error) {
	greeting, err := readLine(c)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(greeting, "* OK") {
		// PREAUTH would leave no chance for STARTTLS (RFC 9051 §7.1.4); BYE is a refusal.
		return nil, fmt.Errorf("unexpected greeting %q", greeting)
	}
	if _, err := io.WriteString(c, "S STARTTLS\r\n"); err != nil {
		return nil, err
	}
	for {
		line, err := readLine(c)
		if err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(line, "S "); ok {
			if !strings.HasPrefix(strings.ToUpper(rest), "OK") {
				return nil, fmt.Errorf("the server refused STARTTLS: %s", rest)
			}
			break
		}
		if !strings.HasPrefix(line, "* ") {
			return nil, fmt.Errorf("%w: unexpected answer to STARTTLS: %q", wire.ErrProtocol, line)
		}
	}
	tc := tls.Client(c, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
}

// readLine reads one CRLF-terminated line of at most 8 KiB, byte by byte.
func readLine(r io.Reader) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for len(line) < 8<<10 {
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		if b[0] == '\n' {
			return strings.TrimSuffix(string(line), "\r"), nil
		}
		line = append(line, b[0])
	}
	return "", fmt.Errorf("%w: line too long", wire.ErrProtocol)
}

// imapConn is the connection as go-imap's client sees it. It replays the greeting after our
// own STARTTLS, and mends one defect of go-imap v2.0.0-beta.8: an empty SASL response after a
// challenge goes out as "=", which RFC 4959 §3 allows only for the initial response in the
// command line; a continuation carries plain base64 (RFC 9051 §6.2.2), so empty is an empty
// line. Dovecot rejects "=" (go-imap issue #760), and SCRAM ends with such an empty response.
type imapConn struct {
	net.Conn
	prefix []byte      // read before the connection's data (by the client's reader only)
	inAuth atomic.Bool // AUTHENTICATE in progress: no other command is being written
}

func (c *imapConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *imapConn) Write(b []byte) (int, error) {
	if c.inAuth.Load() && string(b) == "=\r\n" {
		if _, err := c.Conn.Write(b[1:]); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// deadlineConn gives every write, and every read made while a command is outstanding (armed),
// the account's timeout. go-imap's client reads in a goroutine of its own, also between
// commands (waiting for the server is not an error then, so those reads have no deadline), and
// sets fixed deadlines of its own, which are ignored here.
type deadlineConn struct {
	net.Conn
	timeout  time.Duration
	mu       sync.Mutex
	armed    int // do calls in progress
	timedOut atomic.Bool
}

func (c *deadlineConn) arm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed++
	// Also reaches a read that is already blocked.
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
}

func (c *deadlineConn) disarm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed--; c.armed == 0 {
		c.Conn.SetReadDeadline(time.Time{})
	}
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.armed > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// The server went quiet: the session is over (go-imap's reader would try again).
		c.timedOut.Store(true)
		c.Conn.Close()
	}
	return n, err
}

// explain names the timeout behind err, which go-imap reports as some later failure.
func (c *deadlineConn) explain(err error) error {
	if err != nil && c.timedOut.Load() {
		return fmt.Errorf("no answer from the server within %v (%w)", c.timeout, err)
	}
	return err
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(b)
}

func (c *deadlineConn) SetDeadline(time.Time) error      { return nil }
func (c *deadlineConn) SetReadDeadline(time.Time) error  { return nil }
func (c *deadlineConn) SetWriteDeadline(time.Time) error { return nil }
