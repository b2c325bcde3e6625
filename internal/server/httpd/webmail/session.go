package webmail

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"petrel/internal/store"
)

// Sessions are kept in memory, by the SHA-256 of their token (a token is never stored, so
// a dump of the table logs nobody in). Keeping them in memory makes revocation immediate
// and needs no schema; the price is that a restart logs everybody out, which for a mail
// page is a login, not a loss of work (drafts are saved to the store).
type Sessions struct {
	idle, max time.Duration
	now       func() time.Time

	mu   sync.Mutex
	byID map[[32]byte]*session
}

// session is one logged-in browser.
type session struct {
	account store.Account
	csrf    string // the token every state-changing request must carry
	created time.Time
	seen    time.Time // last request
	remote  netip.Addr
}

// NewSessions makes an empty session table.
func NewSessions(idle, max time.Duration, now func() time.Time) *Sessions {
	return &Sessions{idle: idle, max: max, now: now, byID: map[[32]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for acct and returns its token.
func (s *Sessions) create(acct store.Account, remote netip.Addr) (string, *session) {
	tok := randomToken()
	now := s.now()
	ses := &session{account: acct, csrf: randomToken(), created: now, seen: now, remote: remote}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	s.byID[sha256.Sum256([]byte(tok))] = ses
	return tok, ses
}

// get returns the live session of a token, and marks it used.
func (s *Sessions) get(tok string) *session {
	if tok == "" {
		return nil
	}
	key := sha256.Sum256([]byte(tok))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ses := s.byID[key]
	if ses == nil {
		return nil
	}
	if now.Sub(ses.seen) > s.idle || now.Sub(ses.created) > s.max {
		delete(s.byID, key)
		return nil
	}
	ses.seen = now
	return ses
}

// end removes one session (logout).
func (s *Sessions) end(tok string) {
	s.mu.Lock()
	delete(s.byID, sha256.Sum256([]byte(tok)))
	s.mu.Unlock()
}

// Revoke ends every session of an account (password reset, account disabled, or the
// operator's wish) and reports how many there were.
func (s *Sessions) Revoke(accountID int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, ses := range s.byID {
		if ses.account.ID == accountID {
			delete(s.byID, k)
			n++
		}
	}
	return n
}

// Count is the number of live sessions (dashboard).
func (s *Sessions) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.now())
	return len(s.byID)
}

func (s *Sessions) pruneLocked(now time.Time) {
	for k, ses := range s.byID {
		if now.Sub(ses.seen) > s.idle || now.Sub(ses.created) > s.max {
			delete(s.byID, k)
		}
	}
}

// Cookie names. Over HTTPS the session cookie has the __Host- prefix, which a browser
// accepts only with Secure, Path=/ and no Domain: no other host and no plain-HTTP page can
// set or shadow it. The plain-HTTP listener (the development instance's 8080 on loopback)
// cannot use Secure (a browser would not send it back over http://), so it uses a plain
// name there; configured servers redirect plain HTTP to HTTPS before any of this runs.
const (
	cookieSecure   = "__Host-petrel-session"
	cookiePlain    = "petrel-session"
	loginCSRFPlain = "petrel-login"
	loginCSRFTLS   = "__Host-petrel-login"
)

func sessionCookieName(r *http.Request) string {
	if r.TLS != nil {
		return cookieSecure
	}
	return cookiePlain
}

func loginCookieName(r *http.Request) string {
	if r.TLS != nil {
		return loginCSRFTLS
	}
	return loginCSRFPlain
}

// setCookie sets a cookie with the attributes every cookie of ours has: HttpOnly (no
// script reads it: document.cookie never shows it), SameSite=Strict (no other site's page
// sends it, not even by a link), Path=/ and Secure over HTTPS.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// remoteAddr is the client's address for the auth throttle and the logs.
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// sameOrigin refuses a request that another site made the browser send. Sec-Fetch-Site
// (every current browser sends it) says so directly and is trusted when present; Origin,
// when present and not "null", must name this host. A request with neither comes from no
// browser (curl, a script): nothing forged it. SameSite=Strict already keeps the session
// cookie out of cross-site requests; this also covers the login form, which has no session.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func (wm *Webmail) checkOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			http.Error(w, "403 cross-site request refused", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// current is the session of a request, or nil.
func (wm *Webmail) current(r *http.Request) (*session, string) {
	c, err := r.Cookie(sessionCookieName(r))
	if err != nil {
		return nil, ""
	}
	return wm.Sessions.get(c.Value), c.Value
}

// authed wraps an API handler: it needs a session, and a state-changing request needs the
// session's CSRF token and must come from our own pages.
func (wm *Webmail) authed(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		ses, _ := wm.current(r)
		if ses == nil {
			apiError(w, http.StatusUnauthorized, "not logged in")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) {
				apiError(w, http.StatusForbidden, "cross-site request refused")
				return
			}
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
				r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
				tok = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(tok), []byte(ses.csrf)) != 1 {
				apiError(w, http.StatusForbidden, "missing or wrong CSRF token")
				return
			}
		}
		h(w, r, ses)
	})
}
