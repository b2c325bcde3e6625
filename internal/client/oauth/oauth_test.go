package oauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/wire"
	"petrel/internal/mailtest"
)

// account is an account of a client config using provider p with flow.
func account(t *testing.T, p *mailtest.OAuthProvider, flow string) *clientconf.Account {
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf(`
outbox = "outbox"
[accounts.me]
user = "me@example.org"
[accounts.me.oauth]
provider = "generic"
client_id = %q
auth_url = "%s/authorize"
token_url = "%s/token"
device_url = "%s/device"
scopes = ["mail"]
flow = %q
[accounts.me.smtp]
host = "localhost"
`, p.ClientID, p.URL, p.URL, p.URL, flow)
	c, err := clientconf.Parse(filepath.Join(dir, "client.toml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Accounts["me"]
	if want := filepath.Join(dir, "tokens", "me.json"); a.OAuth.TokenFile != want {
		t.Fatalf("token file %s, want %s (beside the outbox)", a.OAuth.TokenFile, want)
	}
	return a
}

func checkStored(t *testing.T, path string) *stored {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	st, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.AccessToken == "" || st.RefreshToken == "" || st.Expiry.IsZero() {
		t.Fatalf("stored %+v", st)
	}
	return st
}

// TestDeviceFlow: RFC 8628 against the test provider, which answers the first polls with
// authorization_pending and slow_down (the login waits on), or expired_token and
// access_denied (the login fails, saying why).
func TestDeviceFlow(t *testing.T) {
	for _, tt := range []struct {
		polls []string
		want  string // "" for success, else part of the error
	}{
		{[]string{"authorization_pending", "slow_down", "authorization_pending"}, ""},
		{[]string{"authorization_pending", "expired_token"}, "code expired"},
		{[]string{"access_denied"}, "declined"},
	} {
		t.Run(strings.Join(tt.polls, ","), func(t *testing.T) {
			t.Parallel()
			p := mailtest.StartOAuthProvider(t)
			p.DevicePolls = tt.polls
			a := account(t, p, "device")
			var out bytes.Buffer
			err := Login(t.Context(), a.Name, a.OAuth, LoginOptions{Out: &out})
			if !strings.Contains(out.String(), "WDJB-MJHT") || !strings.Contains(out.String(), p.URL+"/activate") {
				t.Errorf("instructions %q lack the code or the URL", out.String())
			}
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				if _, err := os.Stat(a.OAuth.TokenFile); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("a failed login left a token file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkStored(t, a.OAuth.TokenFile)
			if n := len(p.Requests); n != len(tt.polls)+1 {
				t.Fatalf("%d token requests, want %d (one per poll)", n, len(tt.polls)+1)
			}
		})
	}
}

// TestBrowserFlow: the authorization code with PKCE on a loopback redirect; the test plays the
// browser, following the provider's redirect to the listener of Login.
func TestBrowserFlow(t *testing.T) {
	p := mailtest.StartOAuthProvider(t)
	a := account(t, p, "browser")
	var out bytes.Buffer
	var authURL string
	open := func(u string) error {
		authURL = u
		resp, err := http.Get(u)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "Logged in") {
			return fmt.Errorf("redirect page: %s", body)
		}
		return nil
	}
	if err := Login(t.Context(), a.Name, a.OAuth, LoginOptions{Out: &out, Open: open}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "could not start") {
		t.Fatal(out.String())
	}
	if !strings.Contains(authURL, "code_challenge_method=S256") || !strings.Contains(authURL, "redirect_uri=http%3A%2F%2F127.0.0.1%3A") {
		t.Fatalf("authorization URL %s", authURL)
	}
	last := p.Requests[len(p.Requests)-1]
	if last.Get("grant_type") != "authorization_code" || last.Get("code_verifier") == "" {
		t.Fatalf("token request %v", last)
	}
	checkStored(t, a.OAuth.TokenFile)
}

// TestBrowserFlowForgedState: a redirect with another state is refused and the login keeps
// waiting for the real one.
func TestBrowserFlowForgedState(t *testing.T) {
	p := mailtest.StartOAuthProvider(t)
	a := account(t, p, "browser")
	open := func(u string) error {
		// The forger knows the redirect URI but not the state.
		i := strings.Index(u, "redirect_uri=")
		redirect, _, _ := strings.Cut(u[i+len("redirect_uri="):], "&")
		redirect = strings.NewReplacer("%3A", ":", "%2F", "/").Replace(redirect)
		resp, err := http.Get(redirect + "?code=forged&state=guess")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			return fmt.Errorf("forged redirect answered %s", resp.Status)
		}
		resp, err = http.Get(u)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	var out bytes.Buffer
	if err := Login(t.Context(), a.Name, a.OAuth, LoginOptions{Out: &out, Open: open}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "could not start") {
		t.Fatal(out.String())
	}
	checkStored(t, a.OAuth.TokenFile)
}

// TestRefresh: a stored token is used while it has more than Early to live, then refreshed;
// a rotated refresh token is saved; a refused token is refreshed at once; a revoked refresh
// token asks for a new login.
func TestRefresh(t *testing.T) {
	p := mailtest.StartOAuthProvider(t)
	clk := mailtest.NewClock()
	p.Now = clk.Now
	a := account(t, p, "device")
	if err := Login(t.Context(), a.Name, a.OAuth, LoginOptions{Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	first := checkStored(t, a.OAuth.TokenFile)
	ft := &FileTokens{Account: a.Name, Conf: a.OAuth, Now: clk.Now}
	tok, err := ft.Token(t.Context())
	if err != nil || tok != first.AccessToken {
		t.Fatalf("Token = %q, %v; want the stored %q", tok, err, first.AccessToken)
	}
	clk.Add(p.Lifetime - Early + 2*time.Minute) // less than Early left, however long the login took
	tok, err = ft.Token(t.Context())
	if err != nil || tok == first.AccessToken || p.Check(a.User, tok) != "" {
		t.Fatalf("Token after %v = %q, %v; want a fresh valid one", p.Lifetime-Early, tok, err)
	}
	second := checkStored(t, a.OAuth.TokenFile)
	if second.AccessToken != tok || second.RefreshToken == first.RefreshToken {
		t.Fatalf("the refresh was not saved with the rotated refresh token: %+v", second)
	}
	ft.Refused()
	third, err := ft.Token(t.Context())
	if err != nil || third == tok {
		t.Fatalf("Token after Refused = %q, %v; want a new one", third, err)
	}
	p.Revoke()
	ft.Refused()
	if _, err := ft.Token(t.Context()); !errors.Is(err, ErrLoginAgain) || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("after revocation: %v, want ErrLoginAgain", err)
	}
}

// TestConnect: a refused token is renewed once (token_command runs again), a second refusal
// is the error.
func TestConnect(t *testing.T) {
	dir := t.TempDir()
	counter := filepath.Join(dir, "n")
	src := fmt.Sprintf(`
[accounts.me]
user = "me@example.org"
token_command = "echo x >> %s; echo token-$(wc -l < %s)"
[accounts.me.smtp]
host = "localhost"
`, counter, counter)
	c, err := clientconf.Parse(filepath.Join(dir, "client.toml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Accounts["me"]
	var tried []string
	refuse := func(n int) func(string) error {
		return func(tok string) error {
			tried = append(tried, tok)
			if len(tried) <= n {
				return &wire.TokenError{Mech: wire.MechXOAuth2, Err: errors.New("535 no")}
			}
			return nil
		}
	}
	if err := Connect(context.Background(), a, nil, refuse(1)); err != nil || strings.Join(tried, ",") != "token-1,token-2" {
		t.Fatalf("Connect = %v after %v", err, tried)
	}
	tried = nil
	if err := Connect(context.Background(), a, nil, refuse(2)); !wire.IsTokenRefused(err) || len(tried) != 2 {
		t.Fatalf("Connect = %v after %v, want the second refusal", err, tried)
	}
}
