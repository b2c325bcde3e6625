package pop3client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"petrel/internal/client/wire"
	"petrel/internal/mailtest"
)

// TestLoginToken logs in with OAuth tokens over OAUTHBEARER and XOAUTH2, and sees the
// provider's refusal decoded.
func TestLoginToken(t *testing.T) {
	s := mailtest.StartOAuth(t, mailtest.ScriptedTokens)
	s.AddAccount(t, "alice@example.org", "unused password")
	for _, mech := range []string{MechAuto, wire.MechOAuthBearer, wire.MechXOAuth2} {
		for _, tt := range []struct{ token, want string }{
			{"good", ""}, {"stale", "token expired"}, {"narrow", "invalid scope"},
		} {
			t.Run(mech+"/"+tt.token, func(t *testing.T) {
				c, err := Dial(context.Background(), s.POP3Addr, Options{TLS: NoTLS, Timeout: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				err = c.LoginToken(mech, "alice@example.org", tt.token, "localhost", 110, true)
				if tt.want == "" {
					if err != nil {
						t.Fatal(err)
					}
					if _, _, err := c.Stat(); err != nil {
						t.Fatal(err)
					}
					// QUIT, not just close: the next subtest needs the maildrop lock.
					if err := c.Quit(); err != nil {
						t.Fatal(err)
					}
					return
				}
				var te *wire.TokenError
				if !errors.As(err, &te) || te.Status == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want a TokenError saying %q", err, tt.want)
				}
				// The exchange was completed, not cancelled: the session goes on.
				if err := c.LoginToken(mech, "alice@example.org", "good", "", 0, true); err != nil {
					t.Fatalf("second login: %v", err)
				}
				if err := c.Quit(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
	t.Run("plaintext", func(t *testing.T) {
		c, err := Dial(context.Background(), s.POP3Addr, Options{TLS: NoTLS, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.LoginToken(MechAuto, "alice@example.org", "good", "", 0, false); !errors.Is(err, ErrNoMechanism) {
			t.Fatalf("token over plaintext: %v", err)
		}
	})
}
