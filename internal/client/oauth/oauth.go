// Package oauth gives the client tools OAuth 2.0 access tokens for logging in to POP3, IMAP and
// SMTP servers that refuse passwords (Gmail, Microsoft 365): once with `petrel auth login`
// (Login: the device flow of RFC 8628 or the authorization-code flow with PKCE on a loopback
// redirect, RFC 8252), then silently by refreshing (Tokens).
//
// Storage. The tokens of an account live in one JSON file (clientconf's oauth.token_file,
// by default beside the outbox), written atomically with mode 0600 in a 0700 directory, the
// care taken with every secret of the client tools. The refresh token is the secret that
// matters: it lasts months. Access tokens last about an hour; one is used as long as it has
// more than Early left, else refreshed first, so a connection opened late in a long IDLE or
// after a big download logs in with a fresh token. A refresh that rotates the refresh token
// (Microsoft does) saves the new one before the access token is used. Refreshes by
// concurrent processes (fetch and send at once) are serialised by a lock file, and the second
// finds the first's token fresh. The system keyring (Secret Service) is not used: it needs a
// D-Bus session, which cron jobs and servers where `petrel fetch` runs do not have.
//
// A provider's refusal of the refresh token (invalid_grant: revoked, expired, password
// changed) is ErrLoginAgain: only the user can fix it, by logging in again.
//
// golang.org/x/oauth2 does the HTTP exchanges (token refresh, device authorization and
// polling, PKCE verifier and challenge); this package adds storage, locking and the flows'
// user side.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/wire"
	"petrel/internal/lib/safefile"
)

// Early is how long before its expiry an access token is refreshed: a token handed out has
// at least this long to live, time enough to log in.
const Early = 5 * time.Minute

// ErrLoginAgain means the stored refresh token is missing or no longer accepted; `petrel auth
// login ACCOUNT` must run again.
var ErrLoginAgain = errors.New("log in again with `petrel auth login`")

// Tokens hands out an account's access tokens.
type Tokens interface {
	// Token returns an access token valid for a while yet.
	Token(ctx context.Context) (string, error)
	// Refused tells that a server refused the last token: the next Token gets a new one.
	Refused()
}

// For returns the token source of an account that logs in with tokens (a.UsesToken), or nil.
func For(a *clientconf.Account) Tokens {
	switch {
	case a.TokenCommand != "":
		return commandTokens{a}
	case a.OAuth != nil:
		return &FileTokens{Account: a.Name, Conf: a.OAuth}
	}
	return nil
}

// commandTokens runs token_command for every token: the helper keeps its own cache.
type commandTokens struct{ a *clientconf.Account }

func (c commandTokens) Token(ctx context.Context) (string, error) { return c.a.CommandToken(ctx) }
func (c commandTokens) Refused()                                  {}

// Config is the golang.org/x/oauth2 configuration of an account; redirect is the loopback
// redirect URI of the browser flow ("" otherwise).
func Config(o *clientconf.OAuth, redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     o.ClientID,
		ClientSecret: o.ClientSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:       o.AuthURL,
			TokenURL:      o.TokenURL,
			DeviceAuthURL: o.DeviceURL,
			// Installed apps send the client ID (and secret, if any) in the form: Google
			// and Microsoft both accept it, and auto-detection costs a failed request.
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: redirect,
		Scopes:      o.Scopes,
	}
}

// FileTokens keeps the tokens of one account in its token file and refreshes them.
type FileTokens struct {
	Account string
	Conf    *clientconf.OAuth
	// Now is the clock (tests); default time.Now.
	Now func() time.Time

	mu     sync.Mutex
	forced bool // the server refused the stored access token
}

// stored is the token file's content.
type stored struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token"`
	Expiry       time.Time `json:"expiry,omitempty"`
}

func (f *FileTokens) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Refused implements Tokens.
func (f *FileTokens) Refused() {
	f.mu.Lock()
	f.forced = true
	f.mu.Unlock()
}

// Token implements Tokens: the stored access token if it has more than Early to live and was
// not refused, else a refreshed one (saved before it is returned).
func (f *FileTokens) Token(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	unlock, err := lock(f.Conf.TokenFile + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	st, err := load(f.Conf.TokenFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("account %s has no OAuth token yet: %w", f.Account, ErrLoginAgain)
	}
	if err != nil {
		return "", err
	}
	if !f.forced && st.AccessToken != "" && st.Expiry.Sub(f.now()) > Early {
		return st.AccessToken, nil
	}
	if st.RefreshToken == "" {
		return "", fmt.Errorf("account %s: the access token expired and there is no refresh token: %w", f.Account, ErrLoginAgain)
	}
	// An expired token makes oauth2's source refresh; it keeps the old refresh token when
	// the provider does not send a new one.
	old := &oauth2.Token{RefreshToken: st.RefreshToken, Expiry: time.Unix(1, 0)}
	tok, err := Config(f.Conf, "").TokenSource(ctx, old).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return "", fmt.Errorf("account %s: the provider no longer accepts the refresh token (%s): %w", f.Account, describe(re), ErrLoginAgain)
		}
		return "", fmt.Errorf("account %s: refresh the OAuth token: %w", f.Account, err)
	}
	if err := Save(f.Conf.TokenFile, tok); err != nil {
		return "", err
	}
	f.forced = false
	return tok.AccessToken, nil
}

func describe(re *oauth2.RetrieveError) string {
	if re.ErrorDescription != "" {
		return re.ErrorCode + ": " + re.ErrorDescription
	}
	return re.ErrorCode
}

// load reads a token file.
func load(path string) (*stored, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st stored
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("token file %s: %v", path, err)
	}
	return &st, nil
}

// Save writes tok to path atomically, mode 0600, in a directory only the user can enter.
func Save(path string, tok *oauth2.Token) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	st := stored{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return safefile.WriteAtomic(path, append(b, '\n'), 0o600)
}

// lock takes an exclusive lock on path, waiting for another process's refresh.
func lock(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return safefile.Lock(path)
}

// Connect runs connect with the account's secret: its password, or for an account with tokens
// an access token from t (For(a) when t is nil). When the server refuses the token
// (wire.TokenError), the token is renewed (a refresh, or token_command run again) and connect
// runs once more.
func Connect(ctx context.Context, a *clientconf.Account, t Tokens, connect func(secret string) error) error {
	if !a.UsesToken() {
		pass, err := a.Password(ctx)
		if err != nil {
			return err
		}
		return connect(pass)
	}
	if t == nil {
		t = For(a)
	}
	tok, err := t.Token(ctx)
	if err != nil {
		return err
	}
	err = connect(tok)
	if !wire.IsTokenRefused(err) {
		return err
	}
	t.Refused()
	if tok, err = t.Token(ctx); err != nil {
		return err
	}
	return connect(tok)
}

// TokenStatus is what `petrel auth status` shows; never the tokens themselves.
type TokenStatus struct {
	HasRefresh bool
	Expiry     time.Time
}

// Status reads the token file at path.
func Status(path string) (TokenStatus, error) {
	st, err := load(path)
	if err != nil {
		return TokenStatus{}, err
	}
	return TokenStatus{HasRefresh: st.RefreshToken != "", Expiry: st.Expiry}, nil
}
