package mailtest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// OAuthProvider is an OAuth 2.0 authorization server for tests, on loopback: the device
// authorization grant (RFC 8628), the authorization-code grant with PKCE (RFC 7636; only
// S256 is accepted), and refresh tokens, with access tokens that expire by its clock and
// refresh tokens that can be revoked. Its Check is a TokenCheck for StartOAuth.
type OAuthProvider struct {
	URL      string // base URL; endpoints are URL+"/authorize", "/token", "/device"
	ClientID string
	// Lifetime of the access tokens it issues (default 1h).
	Lifetime time.Duration
	// Now is its clock (default time.Now); a test advances it to expire tokens.
	Now func() time.Time
	// DevicePolls scripts the answers to the device flow's polls before it grants the token:
	// "authorization_pending", "slow_down", "expired_token", "access_denied".
	DevicePolls []string
	// Refreshed receives each access token issued by a refresh (buffered; tests wait on it).
	Refreshed chan string
	// User is the username its token introspection (/introspect, RFC 7662) names for a valid
	// token: what a server such as Dovecot's oauth2 passdb logs in.
	User string

	mu       sync.Mutex
	access   map[string]time.Time // access token -> expiry
	refresh  map[string]bool      // valid refresh tokens
	codes    map[string]string    // authorization code -> its S256 code challenge
	polls    []string             // DevicePolls still to answer
	Requests []url.Values         // every token request's form, in order
}

// StartOAuthProvider starts the provider; t.Cleanup stops it.
func StartOAuthProvider(t testing.TB) *OAuthProvider {
	p := &OAuthProvider{ClientID: "petrel-test", Lifetime: time.Hour, Refreshed: make(chan string, 100),
		access: map[string]time.Time{}, refresh: map[string]bool{}, codes: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", p.authorize)
	mux.HandleFunc("/token", p.token)
	mux.HandleFunc("/device", p.device)
	mux.HandleFunc("/introspect", p.introspect)
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *OAuthProvider) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Check accepts the access tokens it issued until they expire.
func (p *OAuthProvider) Check(user, token string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	exp, ok := p.access[token]
	if !ok || !p.now().Before(exp) {
		return "invalid_token"
	}
	return ""
}

// Revoke makes every refresh token invalid (the user logged out everywhere).
func (p *OAuthProvider) Revoke() {
	p.mu.Lock()
	clear(p.refresh)
	p.mu.Unlock()
}

// ExpireAll expires every access token issued so far.
func (p *OAuthProvider) ExpireAll() {
	p.mu.Lock()
	clear(p.access)
	p.mu.Unlock()
}

func random() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func oauthError(w http.ResponseWriter, code int, name string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": name, "error_description": "test provider: " + name})
}

// issue answers a token request with a new access token and refresh token (rotation).
func (p *OAuthProvider) issue(w http.ResponseWriter, refreshed bool) {
	access, refresh := "at-"+random(), "rt-"+random()
	p.access[access] = p.now().Add(p.Lifetime)
	p.refresh[refresh] = true
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": access, "token_type": "Bearer",
		"expires_in": int(p.Lifetime / time.Second), "refresh_token": refresh})
	if refreshed {
		p.Refreshed <- access
	}
}

func (p *OAuthProvider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.ClientID || q.Get("response_type") != "code" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "PKCE S256 required", http.StatusBadRequest)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme != "http" || redirect.Hostname() != "127.0.0.1" {
		http.Error(w, "redirect_uri must be a loopback address (RFC 8252 §7.3)", http.StatusBadRequest)
		return
	}
	code := "code-" + random()
	p.mu.Lock()
	p.codes[code] = q.Get("code_challenge")
	p.mu.Unlock()
	v := redirect.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	redirect.RawQuery = v.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (p *OAuthProvider) introspect(w http.ResponseWriter, r *http.Request) {
	tok := r.FormValue("token")
	w.Header().Set("Content-Type", "application/json")
	if p.Check(p.User, tok) != "" {
		json.NewEncoder(w).Encode(map[string]any{"active": false})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"active": true, "username": p.User})
}

func (p *OAuthProvider) device(w http.ResponseWriter, r *http.Request) {
	if r.FormValue("client_id") != p.ClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	p.polls = append([]string(nil), p.DevicePolls...)
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"device_code": "dev-" + random(), "user_code": "WDJB-MJHT",
		"verification_uri": p.URL + "/activate", "expires_in": 600, "interval": 1})
}

func (p *OAuthProvider) token(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Requests = append(p.Requests, r.PostForm)
	if r.PostForm.Get("client_id") != p.ClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if !p.refresh[rt] {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		delete(p.refresh, rt)
		p.issue(w, true)
	case "authorization_code":
		challenge, ok := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		p.issue(w, false)
	case "urn:ietf:params:oauth:grant-type:device_code":
		if len(p.polls) > 0 {
			answer := p.polls[0]
			p.polls = p.polls[1:]
			oauthError(w, http.StatusBadRequest, answer)
			return
		}
		p.issue(w, false)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

// Clock is a settable clock that a test shares between a provider and a client's token source.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at the real time.
func NewClock() *Clock { return &Clock{t: time.Now()} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ScriptedTokens is a TokenCheck for tests without a provider: the token "good" passes,
// "narrow" lacks the scope (insufficient_scope), any other is expired (invalid_token).
func ScriptedTokens(user, token string) string {
	switch token {
	case "good":
		return ""
	case "narrow":
		return "insufficient_scope"
	}
	return "invalid_token"
}
