// Package webmail is Petrel's mail in a browser: a login page, a JSON API under /api/ (see
// docs/webmail-api.md) and one page with a little JavaScript that uses it, served by the
// web listener of package httpd.
//
// Rules a contributor must not break:
//   - Every request but the login page, the login POST and the static files needs a session
//     (session.go); every state-changing request (any method but GET and HEAD) needs the
//     session's CSRF token in the X-CSRF-Token header (or the csrf form field) and must not
//     come from another site (Origin, Sec-Fetch-Site). A handler never changes state on GET.
//   - Every mailbox and message is reached through the session's account: a mailbox ID from
//     a request is checked against the account before anything is read (mailbox()).
//   - Mail content is never served as an active document of our origin: HTML goes through
//     the sanitiser and is served with a CSP of its own and the sandbox directive, only into
//     the page's sandboxed iframe; attachments are downloads (Content-Disposition:
//     attachment) with a CSP that allows nothing.
//   - Sending goes through Submitter, which is the submission listener's own path (sending
//     limits, sender policy, DKIM, the queue): there is no second way out.
//   - Memory per live-update connection stays small: one goroutine, no buffer beyond
//     net/http's, events read from the store's change channel one at a time.
package webmail

import (
	"context"
	"embed"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"petrel/internal/lib/connid"
	"petrel/internal/store"
)

// Store is what the webmail reads and changes: an account's mailboxes and messages, the
// full-text index and the change notifications.
type Store interface {
	store.Mailboxes
	store.Mail
	store.Changes
	Search(ctx context.Context, mailboxID int64, field store.SearchField, text string) ([]uint32, error)
	AccountByID(ctx context.Context, id int64) (store.Account, error)
}

// Authenticator checks a login with the same throttle as SMTP, POP3 and IMAP (mail/auth).
type Authenticator interface {
	CheckPassword(ctx context.Context, username, password string, remote netip.Addr) (store.Account, error)
}

// Submitter sends a message as an account through the submission listener's path
// (smtpd.Server.Submit): it returns the queue id, or the refusal a mail client would get.
type Submitter interface {
	Submit(acct store.Account, remote netip.Addr, helo string, overTLS bool, from string, rcpts []string, body io.Reader) (string, error)
}

// Config is the webmail's settings.
type Config struct {
	// MaxUpload bounds one compose request (text and attachments together); larger requests
	// get 413. Default DefaultMaxUpload.
	MaxUpload int64
	// SessionIdle ends a session unused for this long; SessionMax ends any session after it.
	SessionIdle, SessionMax time.Duration
	// PageSize is the number of messages in a page of the list (default 50, at most 200).
	PageSize int
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Defaults for zero Config fields.
const (
	DefaultMaxUpload   = 25 << 20
	DefaultSessionIdle = 12 * time.Hour
	DefaultSessionMax  = 7 * 24 * time.Hour
	DefaultPageSize    = 50
	maxPageSize        = 200
)

// Webmail serves the pages and the API.
type Webmail struct {
	cfg      Config
	st       Store
	auth     Authenticator
	submit   Submitter
	log      *slog.Logger
	Sessions *Sessions
	admins   Admins     // nil: no admin pages (SetAdmin)
	manage   ManageFunc // runs a management command for the admin pages
	live     LiveFunc   // the dashboard's live figures; nil: none (SetLive)

	streamsMu   sync.Mutex
	streamsStop chan struct{} // closed by CloseStreams: taken-over event streams end (events.go)
}

//go:embed static
var staticFiles embed.FS

// New makes the webmail.
func New(cfg Config, st Store, au Authenticator, sub Submitter, log *slog.Logger) *Webmail {
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = DefaultMaxUpload
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = DefaultSessionMax
	}
	if cfg.PageSize <= 0 || cfg.PageSize > maxPageSize {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Webmail{cfg: cfg, st: st, auth: au, submit: sub, log: log,
		Sessions: NewSessions(cfg.SessionIdle, cfg.SessionMax, cfg.Now)}
}

// logFor is the log of one request: with the id of its connection ("conn"), which the
// listener gives every connection (httpd.Server), so that one browser connection's lines,
// and the SMTP submission's, can be found together.
func (wm *Webmail) logFor(r *http.Request) *slog.Logger {
	return wm.log.With("conn", connid.From(r.Context()))
}

// Mux is where Register adds its routes (an http.ServeMux).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Register adds the webmail's routes.
func (w *Webmail) Register(mux Mux) {
	static, _ := fs.Sub(staticFiles, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(http.FileServerFS(static))))
	mux.Handle("GET /{$}", http.HandlerFunc(w.index))
	mux.Handle("POST /login", w.checkOrigin(http.HandlerFunc(w.login)))
	mux.Handle("POST /logout", w.authed(w.logout))

	mux.Handle("GET /api/session", w.authed(w.apiSession))
	mux.Handle("GET /api/mailboxes", w.authed(w.apiMailboxes))
	mux.Handle("POST /api/mailboxes", w.authed(w.apiCreateMailbox))
	mux.Handle("GET /api/mailboxes/{mb}/messages", w.authed(w.apiMessages))
	mux.Handle("GET /api/mailboxes/{mb}/search", w.authed(w.apiSearch))
	mux.Handle("GET /api/mailboxes/{mb}/messages/{uid}", w.authed(w.apiMessage))
	mux.Handle("GET /api/mailboxes/{mb}/messages/{uid}/html", w.authed(w.apiMessageHTML))
	mux.Handle("GET /api/mailboxes/{mb}/messages/{uid}/parts/{part}", w.authed(w.apiAttachment))
	mux.Handle("GET /api/mailboxes/{mb}/messages/{uid}/raw", w.authed(w.apiRaw))
	mux.Handle("POST /api/mailboxes/{mb}/flags", w.authed(w.apiFlags))
	mux.Handle("POST /api/mailboxes/{mb}/move", w.authed(w.apiMove))
	mux.Handle("POST /api/mailboxes/{mb}/delete", w.authed(w.apiDelete))
	mux.Handle("POST /api/send", w.authed(w.apiSend))
	mux.Handle("GET /api/events", w.authed(w.apiEvents))

	// The web admin (admin.go): admins only; the pages exist for everyone, so that a
	// user's session meets a 403, not a 404 that looks like a missing page.
	mux.Handle("GET /admin/{$}", w.adminOnly(w.adminIndex))
	mux.Handle("POST /admin/run", w.adminOnly(w.adminRun))
	mux.Handle("GET /admin/live", w.adminOnly(w.adminLive))
}

// staticHandler serves the embedded files with a cache header; the files are part of the
// binary, so a new release has new URLs only by name: keep the cache short.
func staticHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=300")
		h.ServeHTTP(w, r)
	})
}
