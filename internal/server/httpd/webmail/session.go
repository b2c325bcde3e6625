package webmail

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"petrel/internal/store"
)

// Sessions are kept in memory, by the SHA-256 of their token (a token is never stored, so
// a dump of the table logs nobody in). With a store (Persist), each is also recorded there
// and checked there on every request: a revocation from the CLI, on any node, takes effect
// at the next request, and a node that did not start a session (another node on the same
// PostgreSQL, or this one before a restart) takes it up from the record. That works
// because nothing of a session is secret but its token: the CSRF token is derived from it
// (csrfToken), the account is read by ID.
type Sessions struct {
	idle, max time.Duration
	now       func() time.Time
	// persist records the sessions in the store (Persist), so that `petrel webmail
	// sessions` in another process lists and revokes them and other nodes know them; nil
	// keeps them in memory only.
	persist PersistStore

	mu   sync.Mutex
	byID map[[32]byte]*session
}

// session is one logged-in browser.
type session struct {
	id      string    // the store's handle (store.WebSession.ID): hex of the hash's first half
	touched time.Time // when seen was last written to the store
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

// storeTimeout bounds one store call of the session table.
const storeTimeout = 10 * time.Second

// PersistStore is what Persist needs of a store: the session records, and the accounts
// to take up a session that another node started.
type PersistStore interface {
	store.WebSessions
	AccountByID(ctx context.Context, id int64) (store.Account, error)
}

// Persist records sessions in st from now on, and takes up the ones recorded there (by
// another node, or by this one before a restart) as their tokens come in. It deletes the
// records that expired meanwhile. Call it before serving.
func (s *Sessions) Persist(ctx context.Context, st PersistStore) error {
	list, err := st.ListWebSessions(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	for _, ws := range list {
		if s.expired(ws.Created, ws.Seen, now) {
			if _, err := st.RevokeWebSessions(ctx, 0, ws.ID); err != nil {
				return err
			}
		}
	}
	s.persist = st
	return nil
}

// expired reports whether a session created and last seen then is over at now. A record's
// seen is written at most once a minute (get), so a session used on another node may live
// up to a minute past its idle time here.
func (s *Sessions) expired(created, seen, now time.Time) bool {
	return now.Sub(seen) > s.idle || now.Sub(created) > s.max
}

// csrfToken derives a session's CSRF token from its session token: a hash, so that the page
// that shows it gives nothing of the session token away, and any node can compute it.
func csrfToken(tok string) string {
	sum := sha256.Sum256([]byte("petrel webmail csrf\x00" + tok))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (s *Sessions) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

// create starts a session for acct and returns its token; with a store, the session is
// recorded before the token is handed out.
func (s *Sessions) create(acct store.Account, remote netip.Addr) (string, *session, error) {
	tok := randomToken()
	now := s.now()
	key := sha256.Sum256([]byte(tok))
	ses := &session{id: hex.EncodeToString(key[:16]), account: acct, csrf: csrfToken(tok), created: now, seen: now, touched: now, remote: remote}
	if s.persist != nil {
		ctx, cancel := s.storeCtx()
		defer cancel()
		if err := s.persist.AddWebSession(ctx, store.WebSession{ID: ses.id, AccountID: acct.ID, Created: now, Seen: now, Remote: remote.String()}); err != nil {
			return "", nil, err
		}
	}
	s.mu.Lock()
	expired := s.pruneLocked(now)
	s.byID[key] = ses
	s.mu.Unlock()
	s.forget(expired)
	return tok, ses, nil
}

// forget removes ended sessions from the store.
func (s *Sessions) forget(ids []string) {
	if s.persist == nil {
		return
	}
	ctx, cancel := s.storeCtx()
	defer cancel()
	for _, id := range ids {
		s.persist.RevokeWebSessions(ctx, 0, id) // a failure leaves a dead row: nothing it opens
	}
}

// get returns the live session of a token, and marks it used. With a store, the session
// must still be recorded there (a revocation by `petrel webmail revoke` on any node ends
// it at the next request); a session this process does not know is taken up from its
// record; a store that cannot answer refuses the session rather than trust it.
func (s *Sessions) get(tok string) *session {
	if tok == "" {
		return nil
	}
	key := sha256.Sum256([]byte(tok))
	now := s.now()
	s.mu.Lock()
	ses := s.byID[key]
	s.mu.Unlock()
	var seen time.Time // the record's last use, on any node
	if s.persist != nil {
		ctx, cancel := s.storeCtx()
		defer cancel()
		rec, err := s.persist.WebSession(ctx, hex.EncodeToString(key[:16]))
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				s.mu.Lock()
				delete(s.byID, key)
				s.mu.Unlock()
			}
			return nil
		}
		if ses == nil {
			if ses = s.takeUp(ctx, key, tok, rec); ses == nil {
				return nil
			}
		}
		seen = rec.Seen
	}
	if ses == nil {
		return nil
	}
	s.mu.Lock()
	if seen.After(ses.seen) {
		ses.seen = seen
	}
	if s.expired(ses.created, ses.seen, now) {
		delete(s.byID, key)
		s.mu.Unlock()
		s.forget([]string{ses.id})
		return nil
	}
	ses.seen = now
	touch := s.persist != nil && now.Sub(ses.touched) >= time.Minute
	if touch {
		ses.touched = now
	}
	s.mu.Unlock()
	if touch {
		ctx, cancel := s.storeCtx()
		defer cancel()
		s.persist.TouchWebSession(ctx, ses.id, now) // for the list and the other nodes' idle check
	}
	return ses
}

// takeUp makes the in-memory session of a recorded one that another node started (or this
// one before a restart), for the account as it is now.
func (s *Sessions) takeUp(ctx context.Context, key [32]byte, tok string, rec store.WebSession) *session {
	acct, err := s.persist.AccountByID(ctx, rec.AccountID)
	if err != nil {
		return nil
	}
	remote, _ := netip.ParseAddr(rec.Remote)
	ses := &session{id: rec.ID, account: acct, csrf: csrfToken(tok), created: rec.Created, seen: rec.Seen, touched: rec.Seen, remote: remote}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.byID[key]; cur != nil {
		return cur // taken up by a concurrent request
	}
	s.byID[key] = ses
	return ses
}

// end removes one session (logout).
func (s *Sessions) end(tok string) {
	key := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	delete(s.byID, key)
	s.mu.Unlock()
	s.forget([]string{hex.EncodeToString(key[:16])})
}

// Revoke ends every session of an account (password reset, account disabled, or the
// operator's wish) and reports how many there were.
func (s *Sessions) Revoke(accountID int64) int {
	s.mu.Lock()
	n := 0
	for k, ses := range s.byID {
		if ses.account.ID == accountID {
			delete(s.byID, k)
			n++
		}
	}
	s.mu.Unlock()
	if s.persist != nil {
		ctx, cancel := s.storeCtx()
		defer cancel()
		s.persist.RevokeWebSessions(ctx, accountID, "")
	}
	return n
}

// Count is the number of live sessions (dashboard).
func (s *Sessions) Count() int {
	s.mu.Lock()
	expired := s.pruneLocked(s.now())
	n := len(s.byID)
	s.mu.Unlock()
	s.forget(expired)
	return n
}

// pruneLocked drops the expired sessions and returns their ids.
func (s *Sessions) pruneLocked(now time.Time) []string {
	var ids []string
	for k, ses := range s.byID {
		if s.expired(ses.created, ses.seen, now) {
			delete(s.byID, k)
			ids = append(ids, ses.id)
		}
	}
	return ids
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
