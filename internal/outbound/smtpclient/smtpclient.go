// Package smtpclient makes delivery attempts: one message, many recipients at one domain,
// over SMTP to the hosts of the domain's route (package mx) or to a smart host.
//
// # What the queue calls
//
//	c := smtpclient.New(cfg)                 // once; holds no connections
//	res := c.Deliver(ctx, domain, msg)       // route, connect, send, QUIT
//
// or, to send several messages over one connection to the same destination:
//
//	s, err := c.Open(ctx, domain, false)    // err: *Error (no host could be used)
//	res1 := s.Send(ctx, msg1)
//	res2 := s.Send(ctx, msg2)               // RSET between transactions where needed
//	s.Close()                                // QUIT
//
// A Result has one Reply per recipient, in the order of Message.Recipients: 2xx delivered,
// 4xx retry later, 5xx bounce. Each keeps its code, enhanced code and text for the DSN, and
// whether Petrel made it (Local) or the remote server said it. Nothing here is durable: the
// queue records the result in the store.
//
// # One attempt
//
// The hosts of the route are tried in order, each address in turn, at most maxTargets
// connections. A host is left for the next one when it fails before a recipient's fate is
// known: no connection, a greeting or EHLO that is not 2xx (RFC 5321 §3.1: try another MX),
// STARTTLS that a policy requires and that is missing or fails, 421, a 4xx to MAIL or
// DATA, a timeout or a dropped connection before the end of DATA. After the final "." has
// been sent the message may have been delivered, so a lost reply is a temporary failure
// with no second host in the same attempt (RFC 1047: a duplicate is better than a loss,
// but not two at once). 5xx replies are final; 4xx replies to RCPT wait for the next
// attempt.
//
// Timeouts per step follow RFC 5321 §4.5.3.2 (Timeouts); each read and write has its
// deadline, and ctx cancels the whole attempt.
//
// # TLS
//
// Each host carries its mx.TLSPolicy:
//   - DANE, PKIX (MTA-STS enforce, smart host), Required: STARTTLS must be offered and the
//     handshake and verification must succeed, or the host fails temporarily (4.7.4 not
//     offered, 4.7.5 failed). There is no plaintext fallback.
//   - Opportunistic and Testing: STARTTLS if offered, certificate not enforced (Testing
//     checks it against the MX name and reports the failure in Result.TLSReport, RFC 8461
//     §5). Without STARTTLS in the EHLO reply, the message goes in plaintext.
//   - STARTTLS offered but refused or failing (handshake error) under an opportunistic
//     policy: the host fails temporarily and the attempt goes on to the next host, still
//     with TLS. A server that offers TLS and then fails it is more often a transient fault
//     or an interference than a permanent incapability, and a retry costs only time. So
//     that such a server still gets its mail, Message.PlaintextFallback (which the queue
//     sets on a later attempt after Result.TLSFailed) retries such a host at once in
//     plaintext. Opportunistic TLS protects against passive listeners only (RFC 7435), and
//     they cannot make a handshake fail, so the fallback gives nothing away to them.
//
// # Message rules
//
//   - SMTPUTF8 (RFC 6531 §3.2): a sender address or header section with UTF-8 needs the
//     extension, or nothing is sent (5.6.7 for addresses, 5.6.9 for headers); a non-ASCII
//     recipient fails alone (5.6.7) when the rest of the message is ASCII. An address whose
//     only non-ASCII part is the domain goes with the domain in A-labels (RFC 5890) instead.
//   - 8BITMIME (RFC 6152 §3): an 8-bit body to a server without it is refused with 5.6.3.
//     Converting to 7 bits (quoted-printable) would break the DKIM signature made at
//     submission, and today nearly every server offers 8BITMIME.
//   - SIZE (RFC 1870): the size is declared; a message over the announced limit is not sent
//     (5.3.4).
//   - DSN (RFC 3461): RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT when the server offers
//     DSN; Result.DSN says whether it did, so that the queue can send the "relayed"
//     notification of §5.2.2 when NOTIFY=SUCCESS was asked and not passed on.
//   - PIPELINING (RFC 2920): MAIL, the RCPTs and DATA go out in one write and the replies
//     are read in order.
//   - At most Config.MaxRecipients per transaction; recipients beyond it, and those that a
//     server refuses with 452 "too many recipients" (RFC 5321 §4.5.3.1.10) while accepting
//     others, go in a following transaction on the same connection.
//
// # Logs
//
// With Config.Log at debug level the dialogue is logged (AUTH data redacted, never the
// message), for operators who need to see why a server refuses; host failures are logged
// there too. The mail log line per attempt (delivered, deferred, bounced) is the queue's.
//
// # Why not go-smtp's client
//
// emersion/go-smtp's client (used by the submission client of petrel send) carries the DSN
// parameters, but it sends one command at a time (no PIPELINING: a message to 50
// recipients costs 53 round trips instead of 2), and reads replies through net/textproto,
// which bounds neither a line's length nor a reply's number of lines, so a hostile server
// can make us buffer until the deadline. Delivery to the world needs both, so this package
// speaks the wire itself (conn.go, ~250 lines); the server side stays on go-smtp.
//
// # Smart host
//
// With Config.SmartHost every domain goes to one relay (host:587 with STARTTLS, or 465 with
// implicit TLS), whose certificate must verify for its name, with AUTH SCRAM-SHA-256 when
// offered, else PLAIN, never before TLS.
package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"petrel/internal/outbound/mx"
)

// Router finds the hosts for a domain (*mx.Router).
type Router interface {
	Route(ctx context.Context, domain string) (*mx.Route, error)
}

// Timeouts per step; zero values take the defaults of RFC 5321 §4.5.3.2 (and Postfix's for
// the steps the RFC does not name).
type Timeouts struct {
	Connect   time.Duration // 30s
	Greeting  time.Duration // 5 min, "Initial 220 Message"
	EHLO      time.Duration // 5 min
	StartTLS  time.Duration // 5 min, the STARTTLS reply and the handshake
	Mail      time.Duration // 5 min, also RSET and AUTH steps
	Rcpt      time.Duration // 5 min
	DataInit  time.Duration // 2 min, the 354
	DataBlock time.Duration // 3 min, each write of the body
	DataEnd   time.Duration // 10 min, the reply to the final "."
	Quit      time.Duration // 30s
}

func (t Timeouts) withDefaults() Timeouts {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&t.Connect, 30*time.Second)
	set(&t.Greeting, 5*time.Minute)
	set(&t.EHLO, 5*time.Minute)
	set(&t.StartTLS, 5*time.Minute)
	set(&t.Mail, 5*time.Minute)
	set(&t.Rcpt, 5*time.Minute)
	set(&t.DataInit, 2*time.Minute)
	set(&t.DataBlock, 3*time.Minute)
	set(&t.DataEnd, 10*time.Minute)
	set(&t.Quit, 30*time.Second)
	return t
}

// SmartHost relays everything through one server (residential set-ups).
type SmartHost struct {
	Host        string // name (the certificate must be valid for it) or IP address
	Port        int    // default 587 (465 with ImplicitTLS)
	ImplicitTLS bool   // RFC 8314 submissions port
	Username    string // AUTH when set
	Password    string
}

// Config of a Client. Hostname and Router (or SmartHost) are required.
type Config struct {
	Hostname string // our name in EHLO
	Router   Router
	Port     int // destination port (25; other values for tests); mx.Router.Port must match
	// Dial opens connections (default: net.Dialer with Timeouts.Connect, from SourceIPv4 or
	// SourceIPv6 when set: an instance on 127.0.0.2 sends from 127.0.0.2).
	Dial                   func(ctx context.Context, network, addr string) (net.Conn, error)
	SourceIPv4, SourceIPv6 netip.Addr
	// RootCAs verifies PKIX certificates (MTA-STS, smart host); nil: the system's.
	RootCAs   *x509.CertPool
	Timeouts  Timeouts
	SmartHost *SmartHost
	// MaxRecipients per transaction (default 100, the minimum RFC 5321 §4.5.3.1.8 makes
	// servers accept).
	MaxRecipients int
	Now           func() time.Time // certificate validity (default time.Now)
	Log           *slog.Logger
}

// maxTargets bounds the connections of one attempt (Postfix: smtp_mx_address_limit 5).
const maxTargets = 10

// Client makes delivery attempts. It is safe for concurrent use.
type Client struct {
	cfg Config
	t   Timeouts
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	if cfg.Port == 0 {
		cfg.Port = 25
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost" // a configuration should name the host (RFC 5321 §4.1.1.1)
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = 100
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if sh := cfg.SmartHost; sh != nil && sh.Port == 0 {
		sh.Port = 587
		if sh.ImplicitTLS {
			sh.Port = 465
		}
	}
	c := &Client{cfg: cfg, t: cfg.Timeouts.withDefaults()}
	if c.cfg.Dial == nil {
		c.cfg.Dial = c.dial
	}
	return c
}

func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: c.t.Connect}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		src := c.cfg.SourceIPv4
		if ap.Addr().Is6() {
			src = c.cfg.SourceIPv6
		}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
	}
	return d.DialContext(ctx, network, addr)
}

// Message is what one attempt sends.
type Message struct {
	From       string // reverse-path; "" is the null sender of bounces
	Recipients []Recipient
	Body       io.ReaderAt // the message as stored (CRLF lines); read once per transaction
	Size       int64
	// EightBit: the body has 8-bit bytes; UTF8Headers: the header section has UTF-8 (Scan
	// computes both).
	EightBit, UTF8Headers bool
	// DSN parameters of RFC 3461 §4.3-4.4: Ret is "FULL", "HDRS" or ""; EnvID as received
	// (decoded).
	Ret, EnvID string
	// PlaintextFallback: a host that fails STARTTLS under an opportunistic policy is retried
	// at once without TLS (see the package comment).
	PlaintextFallback bool
}

// Recipient is one recipient with its DSN parameters (RFC 3461 §4.1-4.2).
type Recipient struct {
	Addr string
	// Notify: "" (not given), "NEVER", or a comma list of SUCCESS, FAILURE, DELAY.
	Notify string
	// ORcpt is the original recipient (decoded), ORcptType its type ("rfc822" if empty).
	ORcpt, ORcptType string
}

// Result of an attempt.
type Result struct {
	Recipients []Reply // one per Message.Recipients, same order
	Host       string  // the host that answered the transaction ("" if none did)
	Addr       netip.AddrPort
	// TLS describes the connection ("" for plaintext), e.g. "TLS 1.3 TLS_AES_128_GCM_SHA256 verified (dane)".
	TLS string
	// TLSReport lists certificate failures seen under an MTA-STS testing policy, and
	// TLSFailed says that some host failed STARTTLS under an opportunistic policy.
	TLSReport []string
	TLSFailed bool
	// DSN: the server accepted the DSN parameters (RFC 3461 §5.2.2).
	DSN bool
	// Trace lists what happened on each host tried, for the log and the bounce.
	Trace []string
}

// Error is an attempt that reached no server able to take the message.
type Error struct {
	Reply     Reply
	Trace     []string
	TLSFailed bool // as in Result
}

func (e *Error) Error() string { return e.Reply.String() }

// Deliver makes one delivery attempt of msg to the recipients at domain. It never fails as
// a whole: every recipient gets a reply.
func (c *Client) Deliver(ctx context.Context, domain string, msg *Message) Result {
	if len(msg.Recipients) == 0 {
		return Result{}
	}
	s, err := c.Open(ctx, domain, msg.PlaintextFallback)
	if err != nil {
		var e *Error
		errors.As(err, &e)
		res := allFailed(msg, e.Reply, e.Trace)
		res.TLSFailed = e.TLSFailed
		return res
	}
	defer s.Close()
	return s.Send(ctx, msg)
}

func allFailed(msg *Message, rep Reply, trace []string) Result {
	res := Result{Recipients: make([]Reply, len(msg.Recipients)), Trace: trace}
	for i := range res.Recipients {
		res.Recipients[i] = rep
	}
	return res
}

// target is one host address to try.
type target struct {
	host mx.Host
	addr netip.AddrPort
	// plaintext: a retry of a host whose STARTTLS failed, without TLS
	plaintext bool
}

// Session is a connection to one destination that can carry several messages. It is not
// safe for concurrent use.
type Session struct {
	c        *Client
	targets  []target // still to try, in order
	fallback bool     // PlaintextFallback of the Open call
	conn     *conn
	cur      target
	tlsDesc  string
	dsn      bool // the current server offers DSN
	report   []string
	tlsFail  bool
	trace    []string
	dw       *bufio.Writer // the DATA writer and read buffer, reused across messages
	readBuf  []byte
}

// Open connects to the first usable host for domain. The error is an *Error.
func (c *Client) Open(ctx context.Context, domain string, plaintextFallback bool) (*Session, error) {
	s := &Session{c: c, fallback: plaintextFallback}
	if sh := c.cfg.SmartHost; sh != nil {
		s.targets = []target{{host: mx.Host{Name: sh.Host, TLS: mx.TLSPKIX}}}
	} else if c.cfg.Router == nil {
		return nil, &Error{Reply: local(451, "4.3.5", "no router and no smart host configured")}
	} else {
		route, err := c.cfg.Router.Route(ctx, domain)
		if err != nil {
			rep := local(451, "4.4.3", "%v", err)
			if e, ok := mx.AsError(err); ok {
				rep = local(451, e.Code, "%s", e.Msg)
				if e.Permanent {
					rep.Code = 550
					if e.Code == "5.1.10" {
						rep.Code = 556 // RFC 7505 §4.1
					}
				}
			}
			return nil, &Error{Reply: rep}
		}
		for _, h := range route.Hosts {
			for _, a := range h.Addrs {
				if len(s.targets) < maxTargets {
					s.targets = append(s.targets, target{host: h, addr: netip.AddrPortFrom(a, uint16(c.cfg.Port))})
				}
			}
		}
		for _, why := range route.Skipped {
			s.trace = append(s.trace, "skipped "+why)
		}
	}
	if err := s.connectNext(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// connectNext closes the current connection, if any, and connects to the next target that
// works. The error is an *Error with the last failure.
func (s *Session) connectNext(ctx context.Context) error {
	s.drop()
	last := local(451, "4.4.1", "no host to connect to")
	for len(s.targets) > 0 {
		t := s.targets[0]
		s.targets = s.targets[1:]
		rep, tlsFailed, ok := s.connect(ctx, t)
		if ok {
			return nil
		}
		s.tlsFail = s.tlsFail || tlsFailed
		s.trace = append(s.trace, fmt.Sprintf("%s: %s", t.name(), rep))
		s.c.cfg.Log.Debug("outbound host failed", "host", t.name(), "reply", rep.String(), "tls", t.host.TLS.String())
		last = rep
		if tlsFailed && s.fallback && !t.plaintext && !t.host.TLS.Required() {
			t.plaintext = true
			s.targets = append([]target{t}, s.targets...)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return &Error{Reply: last, Trace: s.trace, TLSFailed: s.tlsFail}
}

func (t target) name() string {
	if !t.addr.IsValid() {
		return t.host.Name
	}
	return t.host.Name + "[" + t.addr.String() + "]"
}

// connect opens a session to t: greeting, EHLO, STARTTLS as the policy says, AUTH for a
// smart host. tlsFailed reports a STARTTLS failure under an opportunistic policy.
func (s *Session) connect(ctx context.Context, t target) (rep Reply, tlsFailed bool, ok bool) {
	c := s.c
	addr := t.addr.String()
	sh := c.cfg.SmartHost
	if sh != nil {
		addr = net.JoinHostPort(sh.Host, strconv.Itoa(sh.Port))
	}
	dctx, cancel := context.WithTimeout(ctx, c.t.Connect)
	nc, err := c.cfg.Dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return local(451, "4.4.1", "connect to %s: %v", addr, err), false, false
	}
	raw := nc
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	fail := func(r Reply) (Reply, bool, bool) {
		raw.Close()
		return r, false, false
	}
	if sh != nil && sh.ImplicitTLS {
		tc := tls.Client(nc, s.tlsConfig(t))
		tc.SetDeadline(time.Now().Add(c.t.StartTLS))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(local(451, "4.7.5", "TLS with %s: %v", addr, err))
		}
		nc = tc
	}
	cn := newConn(nc, raw)
	cn.trace = traceTo(c.cfg.Log, t.name())
	cn.tls = sh != nil && sh.ImplicitTLS
	greet, err := cn.readReply(c.t.Greeting)
	if err != nil {
		return fail(ioReply("greeting", err))
	}
	if greet.Code != 220 {
		// RFC 5321 §3.1: a 554 greeting means no service here; try another host.
		cn.quit(c.t.Quit)
		return fail(failed(greet, "greeting"))
	}
	if r, err := cn.hello(c.t.EHLO, c.cfg.Hostname); err != nil {
		return fail(ioReply("EHLO", err))
	} else if !r.Delivered() {
		cn.quit(c.t.Quit)
		return fail(failed(r, "HELO"))
	}
	if !cn.tls && !t.plaintext {
		if !cn.has("STARTTLS") {
			if t.host.TLS.Required() {
				cn.quit(c.t.Quit)
				return fail(local(451, "4.7.4", "TLS is required (%s) but %s does not offer STARTTLS", t.host.TLS, t.name()))
			}
		} else if r, err := s.startTLS(ctx, cn, t); err != nil {
			raw.Close()
			return r, !t.host.TLS.Required(), false
		}
	}
	if sh != nil && sh.Username != "" {
		if r, err := cn.auth(c.t.Mail, sh.Username, sh.Password); err != nil {
			cn.quit(c.t.Quit)
			return fail(r)
		}
	}
	s.conn, s.cur, s.dsn = cn, t, cn.has("DSN")
	s.tlsDesc = ""
	if tc, ok := cn.nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		s.tlsDesc = tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
		switch t.host.TLS {
		case mx.TLSDANE, mx.TLSPKIX:
			s.tlsDesc += " verified (" + t.host.TLS.String() + ")"
		}
	}
	return Reply{}, false, true
}

// failed turns a server's refusal of the session into a temporary host failure: another
// host, or a later attempt, may do better.
func failed(r Reply, step string) Reply {
	r.Text = step + ": " + r.Text
	if r.Code/100 == 5 {
		r = Reply{Code: 451, Enhanced: "4.4.0", Text: fmt.Sprintf("%s refused: %s", step, r.String()), Local: true}
	}
	return r
}

// hello sends EHLO and falls back to HELO when the server refuses it (RFC 5321 §3.2).
func (cn *conn) hello(timeout time.Duration, name string) (Reply, error) {
	r, err := cn.cmd(timeout, "EHLO "+name)
	if err != nil {
		return r, err
	}
	if r.Delivered() {
		cn.ext = parseEHLO(r)
		return r, nil
	}
	if r.Code == 421 {
		return r, nil
	}
	cn.helo = true
	cn.ext = map[string]string{}
	return cn.cmd(timeout, "HELO "+name)
}

// startTLS upgrades the connection (RFC 3207) and says EHLO again (§4.2: forget what the
// server said before).
func (s *Session) startTLS(ctx context.Context, cn *conn, t target) (Reply, error) {
	r, err := cn.cmd(s.c.t.StartTLS, "STARTTLS")
	if err != nil {
		return ioReply("STARTTLS", err), err
	}
	if r.Code != 220 {
		return failed(r, "STARTTLS"), errors.New("STARTTLS refused")
	}
	// Bytes after the 220 came before the handshake, unprotected: a server (or someone in
	// between) injecting replies (CVE-2011-0411 on the client side). Refuse.
	if cn.r.Buffered() > 0 {
		err := fmt.Errorf("%w: data after the STARTTLS reply", errProtocol)
		return ioReply("STARTTLS", err), err
	}
	tc := tls.Client(cn.nc, s.tlsConfig(t))
	tc.SetDeadline(time.Now().Add(s.c.t.StartTLS))
	if err := tc.HandshakeContext(ctx); err != nil {
		return local(451, "4.7.5", "TLS with %s (%s): %v", t.name(), t.host.TLS, err), err
	}
	trace := cn.trace
	*cn = *newConn(tc, cn.raw)
	cn.trace = trace
	cn.tls = true
	r, err = cn.hello(s.c.t.EHLO, s.c.cfg.Hostname)
	if err != nil {
		return ioReply("EHLO after STARTTLS", err), err
	}
	if !r.Delivered() {
		return failed(r, "EHLO after STARTTLS"), errors.New("EHLO refused")
	}
	return r, nil
}

// tlsConfig verifies the certificate as t's policy says. Go's own verification is off
// (InsecureSkipVerify) because it knows only PKIX; VerifyConnection does the policy's.
func (s *Session) tlsConfig(t target) *tls.Config {
	c := s.c
	h := t.host
	conf := &tls.Config{
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
	}
	if _, err := netip.ParseAddr(strings.Trim(h.Name, "[]")); err != nil && !strings.HasPrefix(h.Name, "[") {
		conf.ServerName = h.Name
	}
	if h.TLS == mx.TLSDANE && len(h.DANENames) > 0 {
		conf.ServerName = h.DANENames[0] // RFC 7672 §8.1: SNI is the TLSA base domain
	}
	if !h.TLS.Required() && h.TLS != mx.TLSTesting {
		// Opportunistic: any encryption beats none (RFC 7435 §1); allow old servers.
		conf.MinVersion = tls.VersionTLS10
	}
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		now := c.cfg.Now()
		switch h.TLS {
		case mx.TLSDANE:
			return mx.VerifyDANE(cs.PeerCertificates, h.TLSA, h.DANENames, now)
		case mx.TLSPKIX:
			return mx.VerifyPKIX(cs.PeerCertificates, c.cfg.RootCAs, h.Name, now)
		case mx.TLSTesting:
			if err := mx.VerifyPKIX(cs.PeerCertificates, c.cfg.RootCAs, h.Name, now); err != nil {
				s.report = append(s.report, fmt.Sprintf("%s: MTA-STS testing: %v", h.Name, err))
			}
			if h.STSViolation != "" {
				s.report = append(s.report, fmt.Sprintf("%s: MTA-STS testing: %s", h.Name, h.STSViolation))
			}
		}
		return nil
	}
	return conf
}

// quit says goodbye, without waiting long for the answer, unless the connection is broken
// (a stalled server would only make us wait).
func (cn *conn) quit(timeout time.Duration) {
	if !cn.broken {
		cn.cmd(timeout, "QUIT")
	}
}

// drop closes the current connection, if any, politely.
func (s *Session) drop() {
	if s.conn != nil {
		s.conn.quit(s.c.t.Quit)
		s.conn.raw.Close()
		s.conn = nil
	}
}

// Close ends the session with QUIT.
func (s *Session) Close() error {
	s.drop()
	return nil
}
