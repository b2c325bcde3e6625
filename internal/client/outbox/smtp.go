package outbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/oauth"
	"petrel/internal/client/wire"
	"petrel/internal/lib/deadline"
	"petrel/internal/lib/scram"
)

// UnreachableError means the submission server could not be used at all: the connection,
// the TLS handshake or STARTTLS failed, or it timed out. The queue is kept for later; this is
// the "offline" case `petrel send` reports as queued.
type UnreachableError struct{ Err error }

func (e *UnreachableError) Error() string { return "server unreachable: " + e.Err.Error() }
func (e *UnreachableError) Unwrap() error { return e.Err }

// rejection wraps an SMTP reply so that Flush can tell 5xx from 4xx.
type rejection struct{ *smtp.SMTPError }

func (r rejection) Permanent() bool { return r.Code >= 500 }
func (r rejection) Unwrap() error   { return r.SMTPError }
func (r rejection) Error() string {
	return fmt.Sprintf("%d %s", r.Code, r.Message)
}

// SMTPSender submits over one SMTP connection (RFC 6409 submission: 587 with STARTTLS, or
// 465 with implicit TLS, RFC 8314) with AUTH (RFC 4954).
type SMTPSender struct {
	c *smtp.Client
}

// DialAccount is Dial with the account's secret: its password, or an OAuth access token from
// tokens (oauth.For the account when nil), renewed once if the server refuses it.
func DialAccount(ctx context.Context, a *clientconf.Account, tokens oauth.Tokens) (*SMTPSender, error) {
	var s *SMTPSender
	err := oauth.Connect(ctx, a, tokens, func(secret string) (err error) {
		s, err = Dial(ctx, a, secret)
		return err
	})
	return s, err
}

// Dial connects to the account's submission server, checks TLS and logs in with secret: the
// password, or for an account with OAuth tokens (a.UsesToken) an access token.
func Dial(ctx context.Context, a *clientconf.Account, secret string) (*SMTPSender, error) {
	password := secret
	s := a.SMTP
	timeout := a.Timeout.Duration
	tlsConf, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return nil, &UnreachableError{err}
	}
	conn := net.Conn(deadline.Conn{Conn: raw, Timeout: timeout})
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	fail := func(err error) (*SMTPSender, error) {
		stop()
		raw.Close()
		return nil, err
	}
	if s.TLS == "tls" {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(&UnreachableError{fmt.Errorf("TLS: %w", err)})
		}
		conn = tc
	}
	// Everything before AUTH failing (greeting, EHLO, STARTTLS missing or failing) means
	// this server cannot be used now: the message waits in the queue. go-smtp's STARTTLS
	// refuses a server that does not offer it, so we never fall back to plaintext.
	var c *smtp.Client
	if s.TLS == "starttls" {
		c, err = smtp.NewClientStartTLS(conn, tlsConf)
	} else {
		c = smtp.NewClient(conn)
		err = c.Hello("localhost")
	}
	if err != nil {
		return fail(&UnreachableError{err})
	}
	c.CommandTimeout, c.SubmissionTimeout = timeout, max(timeout, 2*time.Minute)
	_, isTLS := c.TLSConnectionState()
	if a.UsesToken() {
		// OAUTHBEARER when offered, else XOAUTH2 (which providers do not always list); a
		// bearer token is as good as a password, so never in the clear unless allowed.
		if !isTLS && !s.AllowPlaintext {
			return fail(errors.New("refusing to send the OAuth token without TLS (allow_plaintext is false)"))
		}
		mech := strings.ToUpper(s.Auth)
		if mech == "" {
			mech = wire.MechXOAuth2
			if c.SupportsAuth(wire.MechOAuthBearer) {
				mech = wire.MechOAuthBearer
			}
		}
		sc := wire.NewOAuthClient(mech, a.User, secret, s.Host, s.Port)
		if err := c.Auth(sc); err != nil {
			return fail(fmt.Errorf("AUTH: %w", sc.Refused(classify(err))))
		}
	} else if ok, _ := c.Extension("AUTH"); ok {
		var mech sasl.Client
		switch {
		case (s.Auth == "" || s.Auth == "scram-sha-256") && c.SupportsAuth("SCRAM-SHA-256"):
			mech = scram.NewClient(a.User, password)
		case s.Auth == "scram-sha-256":
			return fail(errors.New("the server does not offer AUTH SCRAM-SHA-256"))
		case !isTLS && !s.AllowPlaintext:
			return fail(errors.New("refusing to send the password without TLS (allow_plaintext is false)"))
		default:
			mech = sasl.NewPlainClient("", a.User, password)
		}
		if err := c.Auth(mech); err != nil {
			return fail(fmt.Errorf("AUTH: %w", classify(err)))
		}
		if sc, ok := mech.(*scram.Client); ok && !sc.ServerVerified() {
			// 235 without the server's proof: it may be an impostor; send it nothing.
			return fail(errors.New("AUTH: the server accepted SCRAM without proving its identity"))
		}
	}
	stop() // from here on, deadlines bound every call; ctx only gated the setup
	return &SMTPSender{c: c}, nil
}

// classify turns network errors into UnreachableError and replies into rejections.
func classify(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return rejection{se}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &UnreachableError{err}
	}
	return err
}

// Send runs one transaction. Any refusal of the sender or of a recipient fails the whole
// message (RSET), so that a message is either accepted for all its recipients or not sent.
func (s *SMTPSender) Send(env Envelope, msg io.Reader) error {
	err := s.send(env, msg)
	if err != nil {
		var r rejection
		if errors.As(err, &r) {
			s.c.Reset()
		}
	}
	return err
}

func (s *SMTPSender) send(env Envelope, msg io.Reader) error {
	if err := s.c.Mail(env.From, nil); err != nil {
		return classify(err)
	}
	for _, to := range env.To {
		if err := s.c.Rcpt(to, nil); err != nil {
			return fmt.Errorf("recipient %s: %w", to, classify(err))
		}
	}
	w, err := s.c.Data()
	if err != nil {
		return classify(err)
	}
	if _, err := io.Copy(w, msg); err != nil {
		w.Close()
		return classify(err)
	}
	// The 250 after the final dot is the moment the server takes responsibility.
	if err := w.Close(); err != nil {
		return classify(err)
	}
	return nil
}

// Close ends the session with QUIT.
func (s *SMTPSender) Close() error {
	err := s.c.Quit()
	s.c.Close()
	return err
}
