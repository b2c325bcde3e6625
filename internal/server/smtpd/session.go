package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"petrel/internal/lib/address"
	"petrel/internal/lib/connid"
	"petrel/internal/mail/auth"
	"petrel/internal/mail/deliver"
	"petrel/internal/mail/door"
	"petrel/internal/mail/msgauth"
	"petrel/internal/store"
)

// session is one SMTP session as go-smtp drives it: go-smtp parses commands and calls
// Mail, Rcpt, Data, Reset and Logout. A new session starts at each EHLO after STARTTLS.
//
// States: no transaction (tx == nil) → MAIL accepted (tx set, conn.inTx) → RCPT adds
// recipients → Data commits or refuses → Reset ends the transaction. Data runs in its own
// goroutine for BDAT, so the transaction fields are guarded by mu.
type session struct {
	srv        *Server
	c          *conn        // our wrapper under the go-smtp connection
	log        *slog.Logger // the server's, with the connection's id ("conn")
	remote     netip.Addr   // client IP
	helo       string       // HELO/EHLO argument
	remotePort uint16       // client port, for filters
	tls        bool         // the session runs over TLS (implicit or after STARTTLS)
	tlsInfo    string       // "TLS1.3 TLS_AES_128_GCM_SHA256", for the Received header

	mu       sync.Mutex
	account  *store.Account // authenticated user; nil before AUTH
	tx       *transaction   // the open transaction, nil between transactions
	doorDone bool           // the connection checks ran (door.go)
	doorConn []door.Finding // what they found
	sending  sendingTx      // the limits and usage after the last accepted message (limits.go)
}

// transaction is one MAIL..DATA exchange.
type transaction struct {
	id      string                    // transaction id: in the Received header, the 250 reply and logs
	from    string                    // reverse-path, "" for the null sender
	rcpts   []string                  // accepted forward-paths
	targets []store.Target            // their resolved mailboxes
	to      map[int64]string          // per account, the first recipient that reached it (deliver.Envelope.To)
	remote  []store.OutboundRecipient // accepted recipients at other domains (relay.go)
	forward []deliver.Forward         // where aliases among the recipients forward to
	dsn     dsnParams                 // RET and ENVID of MAIL (relay.go)
	size    int64                     // the SIZE of MAIL FROM (RFC 1870), 0 if not given
	refused int                       // recipients refused
	lastErr string                    // why the last recipient was refused, for the log
	verdict *msgauth.Verdict          // inbound verification's, for the log; nil without it
	sending sendingTx                 // the account's sending limits and usage (limits.go)
	// The door (door.go): the filters' conversations, their findings and greylisting's
	// outcome; the decision, for the log.
	filters  []*activeFilter
	found    []door.Finding
	greylist string
	decision *door.Decision
	logOnce  sync.Once
}

func (s *Server) newSession(sc *smtp.Conn) (smtp.Session, error) {
	c := ourConn(sc.Conn())
	if c == nil {
		return nil, errors.New("smtpd: unknown connection type")
	}
	sess := &session{srv: s, c: c, log: s.log.With("conn", c.id), helo: sanitizeHelo(sc.Hostname())}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		sess.remote = ap.Addr().Unmap()
		sess.remotePort = ap.Port()
	}
	if cs, ok := sc.TLSConnectionState(); ok {
		sess.tls = true
		sess.tlsInfo = strings.ReplaceAll(tls.VersionName(cs.Version), " ", "") + " " + tls.CipherSuiteName(cs.CipherSuite)
	}
	// The handshake, if any, is over: replies can be written to go-smtp's connection.
	c.setReplies(sc.Conn())
	return sess, nil
}

// newID returns a random transaction id: 80 bits in 16 base32 characters, in the logs and
// the Received field (the connection ids are shorter: they need to be unique for less).
func newID() string { return connid.Random(16) }

// recoverPanic turns a panic in a session method into a 421 reply and a closed
// connection, logging the stack; the process keeps running. go-smtp recovers panics too,
// but not in Logout, and without our logger.
func (s *session) recoverPanic(err *error) {
	if v := recover(); v != nil {
		s.log.Error("panic in SMTP session", "ip", s.remote, "panic", v, "stack", string(debug.Stack()))
		s.c.closeAfterReply()
		if err != nil {
			*err = reply(421, 4, 3, 0, "internal error, closing connection")
		}
	}
}

// AuthMechanisms lists the SASL mechanisms for EHLO (RFC 4954 §3). go-smtp only asks
// when TLS is on or insecure AUTH is allowed.
func (s *session) AuthMechanisms() []string {
	if !s.srv.pol.offerAuth {
		return nil
	}
	return s.srv.au.Mechanisms()
}

// Auth starts a SASL exchange (RFC 4954 §4).
func (s *session) Auth(mech string) (_ sasl.Server, err error) {
	defer s.recoverPanic(&err)
	if !s.srv.pol.offerAuth {
		return nil, reply(503, 5, 5, 1, "authentication not available here")
	}
	x, err := s.srv.au.NewSASL(s.srv.ctx, mech, s.remote)
	if err != nil {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return &saslServer{s: s, x: x, mech: mech}, nil
}

// saslServer adapts auth.SASL to go-sasl's Server and records the outcome.
type saslServer struct {
	s    *session
	x    auth.SASL
	mech string
	// final is set when the mechanism finished with data for the client (SCRAM's server
	// signature). go-smtp drops a challenge returned with done, and RFC 4954 §4 has no room
	// for data in the 235 reply, so it goes out as one more 334 whose (empty) answer
	// completes the exchange.
	final bool
}

func (a *saslServer) Next(response []byte) (challenge []byte, done bool, err error) {
	defer a.s.recoverPanic(&err)
	if a.final {
		if len(response) != 0 {
			return nil, false, reply(501, 5, 5, 2, "expected an empty response")
		}
		a.succeed()
		return nil, true, nil
	}
	challenge, done, err = a.x.Next(response)
	if err == nil && done && len(challenge) > 0 {
		a.final = true
		return challenge, false, nil
	}
	log := a.s.log.With("ip", a.s.remote, "mech", a.mech)
	if err != nil {
		a.s.srv.cfg.Metrics.Auth(false)
		// The auth service already slept the throttling delay.
		if a.s.c.authFailed() {
			log.Info("authentication failed, closing connection")
			a.s.c.closeAfterReply()
			return nil, false, reply(421, 4, 7, 0, "too many authentication failures, closing connection")
		}
		if !errors.Is(err, auth.ErrInvalid) {
			log.Warn("authentication error", "err", err)
			return nil, false, reply(454, 4, 7, 0, "temporary authentication failure") // RFC 4954 §6
		}
		log.Info("authentication failed")
		return nil, false, reply(535, 5, 7, 8, "authentication credentials invalid") // RFC 4954 §6
	}
	if done {
		a.succeed()
	}
	return challenge, done, nil
}

// succeed records the authenticated account in the session.
func (a *saslServer) succeed() {
	a.s.srv.cfg.Metrics.Auth(true)
	acct := a.x.Account()
	a.s.mu.Lock()
	a.s.account = &acct
	a.s.mu.Unlock()
	a.s.c.loggedIn()
	a.s.log.Info("authenticated", "ip", a.s.remote, "mech", a.mech, "user", acct.Address)
}

// Mail starts a transaction (RFC 5321 §4.1.1.2).
func (s *session) Mail(from string, opts *smtp.MailOptions) (err error) {
	defer s.count("mail", &err)
	defer s.recoverPanic(&err)
	if s.c.isDraining() {
		s.c.closeAfterReply()
		return reply(421, 4, 3, 2, "shutting down")
	}
	s.mu.Lock()
	acct := s.account
	s.mu.Unlock()
	pol := s.srv.pol

	var refuse *smtp.SMTPError
	switch {
	case pol.requireAuth && acct == nil:
		refuse = reply(530, 5, 7, 0, "authentication required") // RFC 4954 §6
	case from == "" && !pol.nullSender:
		refuse = reply(553, 5, 7, 1, "not allowed to send as <>")
	case from != "":
		a, perr := address.Parse(from)
		if perr != nil {
			refuse = reply(553, 5, 1, 7, "bad sender address syntax") // RFC 3463 X.1.7
			break
		}
		if pol.checkSender {
			ok, err := s.srv.d.Reaches(s.srv.ctx, a, *acct)
			if err != nil {
				s.log.Warn("sender check failed", "err", err)
				refuse = reply(451, 4, 3, 0, "temporary failure, try again later")
			} else if !ok {
				refuse = reply(553, 5, 7, 1, "not allowed to send as <"+a.String()+">")
			}
		}
	}
	tx := &transaction{id: newID(), from: from, dsn: mailDSN(opts)}
	if opts != nil {
		tx.size = opts.Size
	}
	if refuse == nil && acct != nil {
		refuse = s.startSending(tx, *acct) // limits.go
	}
	if refuse == nil && s.srv.cfg.Door != nil {
		refuse = s.doorMail(tx, acct != nil) // door.go
	}
	if refuse != nil {
		tx.closeFilters()
		s.logTx(tx, "rejected", refuse.Message, 0)
		return refuse
	}
	s.mu.Lock()
	s.tx = tx
	s.mu.Unlock()
	s.c.setTx(true)
	return nil
}

// Rcpt adds a recipient (RFC 5321 §4.1.1.3). go-smtp has already enforced MaxRecipients
// (452 4.5.3, RFC 5321 §4.5.3.1.10) and stripped any source route, which RFC 5321
// §4.1.1.3 tells servers to ignore: the mailbox alone decides where mail goes.
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) (err error) {
	defer s.count("rcpt", &err)
	defer s.recoverPanic(&err)
	s.mu.Lock()
	tx := s.tx
	s.mu.Unlock()
	if tx == nil {
		return reply(503, 5, 5, 1, "need MAIL first")
	}
	refuse := s.checkRcptSending(tx) // limits.go
	if refuse == nil {
		refuse = s.resolve(tx, to, opts)
	}
	if refuse != nil {
		s.mu.Lock()
		tx.refused++
		tx.lastErr = refuse.Message
		s.mu.Unlock()
		return refuse
	}
	return nil
}

func (s *session) resolve(tx *transaction, to string, opts *smtp.RcptOptions) *smtp.SMTPError {
	// address.Parse refuses every routing trick: '%', '!', quoted '@', address literals.
	a, err := address.Parse(to)
	if err != nil {
		return reply(553, 5, 1, 3, "bad recipient address syntax") // RFC 3463 X.1.3
	}
	route, err := s.srv.d.Route(s.srv.ctx, a)
	targets := route.Targets
	switch {
	case err == nil:
	case errors.Is(err, deliver.ErrNotHosted):
		if s.srv.pol.relay {
			return s.addRemote(tx, a, opts)
		}
		return s.srv.pol.notHosted
	case errors.Is(err, deliver.ErrUnknownUser):
		return reply(550, 5, 1, 1, "no such user") // RFC 3463 X.1.1
	case errors.Is(err, deliver.ErrAliasLoop):
		return reply(550, 5, 4, 6, "routing loop detected") // RFC 3463 X.4.6
	case errors.Is(err, deliver.ErrForgedSRS):
		// A bounce to a forwarding address we did not make: we are no relay for it.
		return reply(550, 5, 7, 1, "invalid or expired forwarding address") // RFC 3463 X.7.1
	default:
		s.log.Warn("resolving recipient failed", "msgid", tx.id, "err", err)
		return reply(451, 4, 3, 0, "temporary failure, try again later")
	}
	// A full mailbox is refused here, before the body is sent (RFC 3463 X.2.2); the store
	// checks again when it commits.
	switch err := s.srv.d.CheckQuota(s.srv.ctx, targets, tx.size); {
	case errors.Is(err, store.ErrOverQuota):
		return reply(552, 5, 2, 2, "mailbox full")
	case err != nil:
		s.log.Warn("checking the quota of a recipient failed", "msgid", tx.id, "err", err)
		return reply(451, 4, 3, 0, "temporary failure, try again later")
	}
	if s.srv.cfg.Door != nil {
		s.mu.Lock()
		authenticated := s.account != nil
		s.mu.Unlock()
		if refuse := s.doorRcpt(tx, a.String(), authenticated); refuse != nil { // door.go
			return refuse
		}
	}
	s.mu.Lock()
	tx.rcpts = append(tx.rcpts, a.String())
	for _, t := range targets {
		if _, ok := tx.to[t.AccountID]; !ok {
			if tx.to == nil {
				tx.to = map[int64]string{}
			}
			tx.to[t.AccountID] = a.String()
		}
	}
	tx.targets = append(tx.targets, targets...)
	tx.forward = append(tx.forward, route.Forward...)
	s.mu.Unlock()
	return nil
}

// errBareLineEnding is returned by crlfReader.
var errBareLineEnding = errors.New("bare CR or LF in message data")

// Data receives the body (DATA, or all BDAT chunks) and delivers it. It returns success
// only once the store committed (see the package invariants).
func (s *session) Data(r io.Reader) (err error) {
	defer s.count("data", &err)
	defer s.recoverPanic(&err)
	s.mu.Lock()
	tx := s.tx
	var rcpts []string
	var targets []store.Target
	var remote []store.OutboundRecipient
	var forward []deliver.Forward
	var to map[int64]string
	if tx != nil {
		to = maps.Clone(tx.to)
		rcpts = append(rcpts, tx.rcpts...)
		targets = append(targets, tx.targets...)
		remote = append(remote, tx.remote...)
		forward = append(forward, tx.forward...)
	}
	s.mu.Unlock()
	if tx == nil {
		return reply(503, 5, 5, 1, "need MAIL first")
	}
	received := time.Now()
	s.c.startBody()
	defer s.c.endBody()

	spool := s.srv.spools.Get()
	defer spool.Close() // after Deliver, which reads the spool only until it returns
	s.writeTrace(spool, tx, rcpts, received)
	traceLen := spool.Size()

	// Only CRLF may end a line (RFC 5321 §2.3.8); anything else is refused whole so that no
	// other MTA can read the message differently (SMTP smuggling).
	n, err := io.Copy(spool, &crlfReader{r: r})
	if err != nil {
		refuse := s.dataError(err)
		s.logTx(tx, "rejected", refuse.Message, n)
		return refuse
	}
	if n > s.srv.cfg.MaxMessageBytes { // go-smtp enforces it too; cheap to be sure
		s.logTx(tx, "rejected", "too big", n)
		return smtp.ErrDataTooLarge
	}

	ctx, cancel := context.WithTimeout(s.srv.ctx, s.srv.cfg.DataTimeout)
	defer cancel()
	var body deliver.Body = spool
	var ar string // Authentication-Results
	if s.srv.cfg.Verify != nil {
		var refuse *smtp.SMTPError
		if ar, targets, refuse = s.verify(ctx, tx, spool, traceLen, targets); refuse != nil { // verify.go
			s.logTx(tx, "rejected", refuse.Message, n)
			return refuse
		}
	}
	var mods []door.HeaderMod
	if s.srv.cfg.Door != nil {
		action, m, refuse := s.doorData(ctx, tx, spool, traceLen) // door.go
		if refuse != nil {
			s.logTx(tx, "rejected", refuse.Message, n)
			return refuse
		}
		switch action {
		case door.Junk:
			targets = toJunk(targets)
		case door.Discard:
			// A filter asked for the message to be dropped: the client is told it was
			// accepted (milter SMFIR_DISCARD), nothing is stored.
			s.logTx(tx, "discarded", "", n)
			return reply(250, 2, 0, 0, "OK id="+tx.id)
		}
		mods = m
	}
	if ar != "" || len(mods) > 0 || s.srv.cfg.Role == RoleMX {
		var err error
		if body, err = s.withAuthResults(spool, traceLen, ar, mods); err != nil {
			refuse := reply(451, 4, 3, 0, "temporary failure, try again later")
			if errors.Is(err, msgauth.ErrHeaderTooLarge) {
				refuse = reply(552, 5, 3, 4, "message header too large") // RFC 3463 X.3.4
			} else {
				s.log.Warn("reading spooled message failed", "msgid", tx.id, "err", err)
			}
			s.logTx(tx, "rejected", refuse.Message, n)
			return refuse
		}
	}
	charge := s.sendingCharge(tx, len(rcpts)) // limits.go
	_, err = s.srv.d.Deliver(ctx, deliver.Envelope{MailFrom: tx.from, Targets: targets, ReceivedAt: received,
		Remote: remote, Ret: tx.dsn.ret, EnvID: tx.dsn.envID, Forward: forward, Submitted: s.srv.pol.requireAuth,
		Charge: charge, Classify: s.srv.cfg.Role == RoleMX, To: to,
		Verified: verified(tx.verdict)}, body)
	if le := (*store.LimitError)(nil); errors.As(err, &le) {
		s.charged(tx, nil) // the next MAIL reads the counters that refused this one
		refuse := s.limitReply(le)
		s.logTx(tx, "rejected", refuse.Message, n)
		return refuse
	}
	if q := (*store.QuotaError)(nil); errors.As(err, &q) {
		// A mailbox filled up between RCPT and now. The store committed nothing, and one
		// reply must do for every recipient: if some could still take the message, the
		// client retries, and at the next RCPT the full mailboxes are refused alone.
		s.logTx(tx, "rejected", "mailbox full", n)
		if overQuotaAll(targets, q.Accounts) {
			return reply(552, 5, 2, 2, "mailbox full")
		}
		return reply(452, 4, 2, 2, "mailbox full for some recipients, try again later")
	}
	var sieveReject *deliver.RejectError
	switch {
	case errors.Is(err, deliver.ErrForwardLoop):
		s.logTx(tx, "rejected", "forwarding loop", n)
		return reply(554, 5, 4, 6, "routing loop detected: too many hops") // RFC 5321 §6.3
	case errors.Is(err, deliver.ErrForwardRate):
		s.logTx(tx, "rejected", "forwarding rate", n)
		return reply(451, 4, 7, 1, "forwarding rate of a recipient reached, try again later")
	case errors.As(err, &sieveReject):
		// The recipient's Sieve script refused it (RFC 5429 §2.1: at SMTP time when the
		// message has this one recipient); nothing was delivered, and nothing charged to
		// the sending limits, which are charged in the delivery's commit.
		s.logTx(tx, "rejected", "sieve: "+sieveReject.Reason, n)
		return reply(550, 5, 7, 1, sieveReject.Reason)
	}
	if err != nil {
		s.log.Error("delivery failed", "msgid", tx.id, "err", err)
		s.logTx(tx, "failed", "store error", n)
		return reply(451, 4, 3, 0, "temporary failure, try again later")
	}
	s.charged(tx, charge)
	s.logTx(tx, "delivered", "", n)
	// go-smtp sends an SMTPError as the reply whatever its code: this is the 250.
	return reply(250, 2, 0, 0, "OK id="+tx.id)
}

// overQuotaAll reports whether every target is in an account of over.
func overQuotaAll(targets []store.Target, over []int64) bool {
	for _, t := range targets {
		if !slices.Contains(over, t.AccountID) {
			return false
		}
	}
	return true
}

// count reports the outcome of MAIL, RCPT or DATA to the metrics by the reply's enhanced
// status code (the code alone when the reply has none); a nil error (MAIL or RCPT
// accepted) is not counted, and an error that is no reply is counted as "error".
func (s *session) count(stage string, err *error) {
	var se *smtp.SMTPError
	switch {
	case *err == nil:
		return
	case errors.As(*err, &se) && se.EnhancedCode != smtp.EnhancedCodeNotSet && se.EnhancedCode != (smtp.EnhancedCode{}):
		c := se.EnhancedCode
		s.srv.cfg.Metrics.Message(stage, strconv.Itoa(c[0])+"."+strconv.Itoa(c[1])+"."+strconv.Itoa(c[2]))
	case se != nil:
		s.srv.cfg.Metrics.Message(stage, strconv.Itoa(se.Code))
	default:
		s.srv.cfg.Metrics.Message(stage, "error")
	}
}

// dataError maps a failure while receiving the body to the reply.
func (s *session) dataError(err error) *smtp.SMTPError {
	var se *smtp.SMTPError
	switch {
	case errors.Is(err, errBareLineEnding):
		return reply(554, 5, 6, 0, "bare LF/CR not allowed") // RFC 5321 §2.3.8
	case errors.As(err, &se):
		return se // too big (552 5.3.4, RFC 1870 §6.3)
	case errors.Is(err, smtp.ErrTooLongLine):
		return reply(500, 5, 5, 2, "line too long") // RFC 5321 §4.5.3.1.6
	case errors.Is(err, smtp.ErrDataReset):
		return reply(554, 5, 5, 0, "message transfer aborted")
	case isTimeout(err):
		s.c.closeAfterReply()
		return reply(421, 4, 4, 2, "timeout receiving message data, closing connection")
	default:
		s.c.closeAfterReply()
		return reply(421, 4, 4, 0, "error receiving message data, closing connection")
	}
}

// Reset ends the transaction (RSET, EHLO, after DATA; RFC 5321 §4.1.1.5).
var _ smtp.UnknownCommandSession = (*session)(nil)

// UnknownCommand implements smtp.UnknownCommandSession (third_party/go-smtp): a command
// go-smtp does not know goes to the filters of the open transaction (door.go), which may
// count it; go-smtp answers it 500 either way. Outside a transaction no filter is open.
func (s *session) UnknownCommand(cmd, arg string) {
	defer s.recoverPanic(nil)
	s.mu.Lock()
	tx := s.tx
	s.mu.Unlock()
	if tx == nil || s.srv.cfg.Door == nil {
		return
	}
	line := cmd
	if arg != "" {
		line += " " + arg
	}
	s.doorUnknown(tx, line)
}

func (s *session) Reset() {
	defer s.recoverPanic(nil)
	s.endTx("aborted")
}

// Logout is called when the connection closes or is upgraded by STARTTLS.
func (s *session) Logout() (err error) {
	defer s.recoverPanic(&err)
	s.endTx("aborted: connection closed")
	s.c.setReplies(nil) // a new session sets it once the connection is usable again
	return nil
}

func (s *session) endTx(result string) {
	s.mu.Lock()
	tx := s.tx
	s.tx = nil
	s.mu.Unlock()
	if tx != nil {
		tx.closeFilters()
		s.logTx(tx, result, "", 0)
	}
	s.c.setTx(false)
}

// logTx writes the one log line of a transaction; later calls for the same one do nothing.
func (s *session) logTx(tx *transaction, result, reason string, size int64) {
	tx.logOnce.Do(func() {
		s.mu.Lock()
		user := ""
		if s.account != nil {
			user = s.account.Address
		}
		attrs := []any{
			slog.String("msgid", tx.id),
			slog.String("ip", s.remote.String()),
			slog.String("helo", s.helo),
			slog.String("user", user),
			slog.String("from", tx.from),
			slog.Int("rcpts", len(tx.rcpts)),
			slog.Int("refused", tx.refused),
			slog.Int64("size", size),
			slog.String("result", result),
		}
		if reason == "" {
			reason = tx.lastErr
		}
		verdict := tx.verdict
		decision, greylist := tx.decision, tx.greylist
		s.mu.Unlock()
		if reason != "" {
			attrs = append(attrs, slog.String("reason", reason))
		}
		if v := verdict; v != nil {
			attrs = append(attrs, slog.String("spf", string(v.SPF.Result)))
			if len(v.DKIM) > 0 {
				// One result per signature, in header order: "pass", "fail,pass".
				rs := make([]string, len(v.DKIM))
				for i, r := range v.DKIM {
					rs[i] = string(r.Result)
				}
				attrs = append(attrs, slog.String("dkim", strings.Join(rs, ",")))
			}
			attrs = append(attrs, slog.String("dmarc", string(v.DMARC.Result)),
				slog.String("disposition", string(v.Disposition())))
		}
		if greylist != "" {
			attrs = append(attrs, slog.String("greylist", greylist))
		}
		if d := decision; d != nil {
			attrs = append(attrs, slog.String("door", d.Action.String()), slog.Float64("score", d.Score),
				slog.String("reasons", strings.Join(d.Reasons, " ")))
		}
		s.log.Info("smtp transaction", attrs...)
	})
}

// writeTrace writes the trace headers of RFC 5321 §4.4: Return-Path, then Received with
// the protocol keyword of RFC 3848 (ESMTP, ESMTPA, ESMTPS, ESMTPSA).
func (s *session) writeTrace(w io.Writer, tx *transaction, rcpts []string, at time.Time) {
	from := tx.from
	if a, err := address.Parse(from); err == nil {
		from = a.String()
	}
	proto := "ESMTP"
	if s.tls {
		proto += "S"
	}
	s.mu.Lock()
	if s.account != nil {
		proto += "A"
	}
	s.mu.Unlock()
	ip := s.remote.String()
	if s.remote.Is6() {
		ip = "IPv6:" + ip // RFC 5321 §4.1.3 address literal
	}
	// Built with append rather than fmt: this runs for every message.
	b := make([]byte, 0, 256)
	b = append(b, "Return-Path: <"...)
	b = append(b, from...)
	b = append(b, ">\r\nReceived: from "...)
	b = append(b, s.helo...)
	b = append(b, " (["...)
	b = append(b, ip...)
	b = append(b, "])\r\n\tby "...)
	b = append(b, s.srv.cfg.Hostname...)
	b = append(b, " with "...)
	b = append(b, proto...)
	if s.tls {
		b = append(b, " ("...)
		b = append(b, s.tlsInfo...)
		b = append(b, ')')
	}
	b = append(b, "\r\n\tid "...)
	b = append(b, tx.id...)
	if len(rcpts) == 1 {
		b = append(b, "\r\n\tfor <"...)
		b = append(b, rcpts[0]...)
		b = append(b, '>')
	}
	b = append(b, ";\r\n\t"...)
	b = at.AppendFormat(b, time.RFC1123Z)
	b = append(b, "\r\n"...)
	w.Write(b)
}

// sanitizeHelo makes the client's HELO argument safe to put in a header: printable ASCII
// that cannot end a comment or clause, at most 255 bytes.
func sanitizeHelo(h string) string {
	if len(h) > 255 {
		h = h[:255]
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>;\\\"", r) {
			return '?'
		}
		return r
	}, h)
}

// crlfReader passes data through and fails with errBareLineEnding at the first CR not
// followed by LF or LF not preceded by CR. go-smtp's DATA reader only ends at CRLF.CRLF but
// lets bare CR and LF through; BDAT passes bytes as they are.
//
// It checks each chunk with two vectorized scans (bytes.IndexByte for LF, bytes.Count for
// CR) rather than byte by byte: the body of every message goes through here.
type crlfReader struct {
	r      io.Reader
	prevCR bool // the last byte read was CR
}

func (c *crlfReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && !c.check(p[:n]) {
		return 0, errBareLineEnding
	}
	if err == io.EOF && c.prevCR {
		return 0, errBareLineEnding
	}
	return n, err
}

// check reports whether b, the next bytes of the stream, keeps every CR followed by LF and
// every LF preceded by CR, and records whether b ends with a CR whose LF is still to come.
func (c *crlfReader) check(b []byte) bool {
	start := 0
	if c.prevCR {
		if b[0] != '\n' {
			return false
		}
		start = 1
	}
	// Every LF after start must follow a CR; each such pair uses a different CR.
	pairs := 0
	for i := start; ; i++ {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == start || b[i-1] != '\r' {
			return false
		}
		pairs++
	}
	// Then every CR but a final one is followed by LF exactly when there are as many CRs
	// as pairs.
	c.prevCR = b[len(b)-1] == '\r'
	crs := bytes.Count(b[start:], []byte{'\r'})
	if c.prevCR {
		crs--
	}
	return crs == pairs
}

var _ net.Conn = (*conn)(nil)
