package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"

	"golang.org/x/oauth2"

	"petrel/internal/client/clientconf"
)

// LoginOptions is the user side of a login flow.
type LoginOptions struct {
	// Out gets the instructions for the user (the URL to open, the code to type).
	Out io.Writer
	// Open is called with the URL the user must visit (browser flow): it may start a browser.
	// Whatever it does, the URL is printed to Out as well. Default: nothing more.
	Open func(url string) error
	// Listen makes the loopback listener of the browser flow; default 127.0.0.1, port 0.
	Listen func() (net.Listener, error)
}

// Login runs the account's flow (o.Flow) and stores the tokens in its token file.
func Login(ctx context.Context, account string, o *clientconf.OAuth, lo LoginOptions) error {
	var tok *oauth2.Token
	var err error
	if o.Flow == "device" {
		tok, err = deviceFlow(ctx, o, lo)
	} else {
		tok, err = browserFlow(ctx, o, lo)
	}
	if err != nil {
		return fmt.Errorf("account %s: %w", account, explain(err))
	}
	if tok.RefreshToken == "" {
		// Without one, the login lasts an hour. Microsoft needs offline_access for it,
		// Google access_type=offline (asked for below).
		fmt.Fprintln(lo.Out, "warning: the provider issued no refresh token; the login ends when the access token expires (check the scopes)")
	}
	return Save(o.TokenFile, tok)
}

// explain makes an RFC 6749/8628 error answer readable.
func explain(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	switch re.ErrorCode {
	case "expired_token":
		return fmt.Errorf("the code expired before the login was completed; run the command again (%w)", err)
	case "access_denied":
		return fmt.Errorf("the login was declined (%w)", err)
	case "invalid_scope":
		return fmt.Errorf("the provider refused the scopes %w; check oauth.scopes", err)
	case "invalid_client", "unauthorized_client":
		return fmt.Errorf("the provider does not know this app (client_id/client_secret) or does not allow it this flow (%w)", err)
	}
	return err
}

// deviceFlow is RFC 8628: show a code and a URL, poll until the user has approved.
// oauth2's DeviceAccessToken polls at the given interval, adds 5 s on slow_down (§3.5), keeps
// polling on authorization_pending, and stops on expired_token and access_denied.
func deviceFlow(ctx context.Context, o *clientconf.OAuth, lo LoginOptions) (*oauth2.Token, error) {
	conf := Config(o, "")
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return nil, err
	}
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(lo.Out, "Open %s\n(or %s and enter the code %s)\n", da.VerificationURIComplete, da.VerificationURI, da.UserCode)
	} else {
		fmt.Fprintf(lo.Out, "Open %s and enter the code %s\n", da.VerificationURI, da.UserCode)
	}
	fmt.Fprintln(lo.Out, "Waiting for the login to be completed...")
	return conf.DeviceAccessToken(ctx, da)
}

// browserFlow is the authorization-code flow with PKCE (RFC 7636, S256) for a native app
// (RFC 8252): the redirect goes to a one-shot HTTP listener on the loopback address, with a
// port the kernel chose (§7.3) and a random state against cross-site request forgery.
func browserFlow(ctx context.Context, o *clientconf.OAuth, lo LoginOptions) (*oauth2.Token, error) {
	listen := lo.Listen
	if listen == nil {
		listen = func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	}
	l, err := listen()
	if err != nil {
		return nil, err
	}
	defer l.Close()
	redirect := "http://" + l.Addr().String() + "/"
	conf := Config(o, redirect)
	verifier := oauth2.GenerateVerifier()
	state := randomString()
	// access_type and prompt: Google issues a refresh token only when asked this way.
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.AccessTypeOffline)

	type result struct {
		code string
		err  error
	}
	done := make(chan result, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var res result
		switch {
		case r.URL.Path != "/":
			http.NotFound(w, r)
			return
		case q.Get("state") != state:
			// Not our request (a stale tab, or forgery): ignore it and keep waiting.
			http.Error(w, "unexpected state", http.StatusBadRequest)
			return
		case q.Get("error") != "":
			res.err = &oauth2.RetrieveError{ErrorCode: q.Get("error"), ErrorDescription: q.Get("error_description")}
		case q.Get("code") == "":
			http.Error(w, "no code", http.StatusBadRequest)
			return
		default:
			res.code = q.Get("code")
		}
		msg := "Logged in: you can close this window."
		if res.err != nil {
			msg = "Login failed: " + res.err.Error()
		}
		fmt.Fprintf(w, "<!doctype html><title>petrel</title><p>%s</p>\n", html.EscapeString(msg))
		select {
		case done <- res:
		default:
		}
	})}
	go srv.Serve(l)
	defer srv.Close()

	fmt.Fprintf(lo.Out, "Open this URL in a browser on this machine and log in:\n%s\n", authURL)
	if lo.Open != nil {
		if err := lo.Open(authURL); err != nil {
			fmt.Fprintf(lo.Out, "(could not start a browser: %v)\n", err)
		}
	}
	var res result
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res = <-done:
	}
	if res.err != nil {
		return nil, res.err
	}
	return conf.Exchange(ctx, res.code, oauth2.VerifierOption(verifier))
}

func randomString() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
