package mailtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/auth"
	"petrel/internal/mail/deliver"
	"petrel/internal/server/imapd"
	"petrel/internal/server/pop3d"
	"petrel/internal/server/smtpd"
	"petrel/internal/store"
)

// TokenCheck decides on an OAuth access token presented for user: "" accepts it, else the
// status the server sends back in its error challenge (RFC 7628 §3.2.2): "invalid_token",
// "insufficient_scope", or Google's "401".
type TokenCheck func(user, token string) (status string)

// OAuthServers are Petrel's POP3, IMAP and submission servers over one store, with the
// SASL mechanisms OAUTHBEARER (RFC 7628) and XOAUTH2 added. Petrel does not accept OAuth
// tokens; this server side exists so that the client tools' token logins are tested against
// real sessions. Every listener is plaintext with authentication allowed (the client side's
// TLS is tested elsewhere): clients set allow_plaintext.
type OAuthServers struct {
	*Server
	POP3Addr, IMAPAddr, SubmissionAddr string
	// Check is consulted for each token; tests may swap it between logins (not during one).
	Check TokenCheck
	// IMAPServer is the IMAP server, for a test that stops it under a client.
	IMAPServer *imapd.Server
}

// StartOAuth starts the servers; t.Cleanup stops them.
func StartOAuth(t testing.TB, check TokenCheck) *OAuthServers {
	t.Helper()
	s := Start(t)
	o := &OAuthServers{Server: s, Check: check}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := auth.New(s.Store, auth.Config{FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond}, log)
	au := &oauthAuth{Service: svc, dir: s.Store, o: o}
	p := pop3d.New(pop3d.Config{Hostname: "localhost", AllowPlaintextAuth: true}, s.Store, au, log)
	o.POP3Addr = serve(t, p)
	o.IMAPServer = imapd.New(imapd.Config{Hostname: "localhost", AllowPlaintextAuth: true}, s.Store, au, log)
	o.IMAPAddr = listen(t, o.IMAPServer.Serve)
	sub := smtpd.New(smtpd.Config{Hostname: "localhost", Role: smtpd.RoleSubmission, SpoolDir: t.TempDir(), AllowInsecureAuth: true},
		deliver.New(s.Store, log), au, log)
	o.SubmissionAddr = listen(t, sub.Serve)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
		o.IMAPServer.Shutdown(ctx)
		sub.Shutdown(ctx)
	})
	return o
}

func listen(t testing.TB, serve func(net.Listener) error) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go serve(l)
	return l.Addr().String()
}

// oauthAuth is Petrel's authenticator plus the two token mechanisms.
type oauthAuth struct {
	*auth.Service
	dir interface {
		AccountByAddress(ctx context.Context, address string) (store.Account, error)
	}
	o *OAuthServers
}

func (a *oauthAuth) Mechanisms() []string {
	return append(a.Service.Mechanisms(), "OAUTHBEARER", "XOAUTH2")
}

func (a *oauthAuth) NewSASL(ctx context.Context, mech string, remote netip.Addr) (auth.SASL, error) {
	switch m := strings.ToUpper(mech); m {
	case "OAUTHBEARER", "XOAUTH2":
		return &tokenSASL{a: a, ctx: ctx, mech: m}, nil
	}
	return a.Service.NewSASL(ctx, mech, remote)
}

// tokenSASL is the server side of OAUTHBEARER and XOAUTH2: the initial response carries the
// user and the token; a refusal is a JSON challenge, and the exchange fails after the client's
// answer to it (RFC 7628 §3.2.3).
type tokenSASL struct {
	a      *oauthAuth
	ctx    context.Context
	mech   string
	failed bool
	acct   store.Account
}

func (s *tokenSASL) Account() store.Account { return s.acct }

func (s *tokenSASL) Next(resp []byte) ([]byte, bool, error) {
	switch {
	case s.failed:
		return nil, true, auth.ErrInvalid
	case resp == nil:
		return []byte{}, false, nil // no initial response: ask for it
	}
	user, token, ok := parseTokenResponse(s.mech, resp)
	if !ok {
		return nil, true, fmt.Errorf("%w: malformed %s response", auth.ErrInvalid, s.mech)
	}
	status := s.a.o.Check(user, token)
	if status == "" {
		acct, err := s.a.dir.AccountByAddress(s.ctx, user)
		if err != nil {
			return nil, true, auth.ErrInvalid
		}
		s.acct = acct
		return nil, true, nil
	}
	s.failed = true
	b, _ := json.Marshal(map[string]string{"status": status, "schemes": "bearer", "scope": "mail"})
	return b, false, nil
}

// parseTokenResponse reads the user and the token of an initial response.
func parseTokenResponse(mech string, resp []byte) (user, token string, ok bool) {
	fields := bytes.Split(resp, []byte{1})
	if mech == "OAUTHBEARER" {
		gs2, _, found := strings.Cut(string(fields[0]), ",a=")
		if !found || gs2 != "n" {
			return "", "", false
		}
		user, _, _ = strings.Cut(strings.TrimPrefix(string(fields[0]), "n,a="), ",")
		user = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(user)
		fields = fields[1:]
	}
	for _, f := range fields {
		k, v, _ := strings.Cut(string(f), "=")
		switch k {
		case "user":
			user = v
		case "auth":
			token, ok = strings.CutPrefix(v, "Bearer ")
		}
	}
	return user, token, ok && user != ""
}
