package webmail

import (
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"sync"

	"petrel/internal/mail/auth"
)

// PageCSP is the Content-Security-Policy of the webmail's own pages: scripts, styles and
// frames from our origin only (no inline script or style, so an injected tag is inert),
// images from our origin and data: URLs, fetches to our API only, forms posting to us only,
// and nobody may frame the page.
const PageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

//go:embed templates
var templateFiles embed.FS

// pages are parsed at first use, not at start: the one binary also runs `petrel fetch --idle`,
// which never renders a page and would otherwise keep the parsed templates for its whole life.
var pages = sync.OnceValue(func() *template.Template {
	return template.Must(template.ParseFS(templateFiles, "templates/*.html"))
})

type loginPage struct {
	CSRF  string
	Error string
	User  string
}

type appPage struct {
	Address string
	CSRF    string
}

// index is the login page, or the mail page for a logged-in browser.
func (wm *Webmail) index(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	if ses, _ := wm.current(r); ses != nil {
		render(w, "app.html", appPage{Address: ses.account.Address, CSRF: ses.csrf})
		return
	}
	wm.loginForm(w, r, "", "", http.StatusOK)
}

// loginForm renders the login page with a fresh login CSRF token (double submit: the form
// field must equal the cookie, which only our page can have set and read).
func (wm *Webmail) loginForm(w http.ResponseWriter, r *http.Request, user, msg string, code int) {
	tok := randomToken()
	setCookie(w, r, loginCookieName(r), tok, 3600)
	pageHeaders(w)
	w.WriteHeader(code)
	render(w, "login.html", loginPage{CSRF: tok, Error: msg, User: user})
}

// pageHeaders are the headers of our own pages: their policy, no caching (a page holds the
// session's CSRF token), and a referrer policy that names our origin to ourselves only, so
// that the browser sends Origin with our own form posts (with "no-referrer" it sends
// "Origin: null") and nothing to other sites.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", PageCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
}

func render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pages().ExecuteTemplate(w, name, data) // an error here is a broken connection
}

// login checks the form's credentials through the shared authenticator (and its throttle)
// and starts a session.
func (wm *Webmail) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	user := strings.TrimSpace(r.PostFormValue("username"))
	pass := r.PostFormValue("password")
	c, err := r.Cookie(loginCookieName(r))
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		wm.loginForm(w, r, user, "Your login form expired. Please try again.", http.StatusForbidden)
		return
	}
	acct, err := wm.auth.CheckPassword(r.Context(), user, pass, remoteAddr(r))
	if err != nil {
		msg := "Wrong address or password."
		code := http.StatusUnauthorized
		if !errors.Is(err, auth.ErrInvalid) {
			wm.logFor(r).Warn("webmail login failed", "user", user, "err", err)
			msg, code = "Login is not possible right now. Please try again later.", http.StatusServiceUnavailable
		}
		wm.logFor(r).Info("webmail login refused", "user", user, "ip", remoteAddr(r))
		wm.loginForm(w, r, user, msg, code)
		return
	}
	tok, _, err := wm.Sessions.create(acct, remoteAddr(r))
	if err != nil {
		wm.logFor(r).Error("webmail: recording a session failed", "user", acct.Address, "err", err)
		wm.loginForm(w, r, user, "Login is not possible right now. Please try again later.", http.StatusServiceUnavailable)
		return
	}
	setCookie(w, r, sessionCookieName(r), tok, int(wm.cfg.SessionMax.Seconds()))
	setCookie(w, r, loginCookieName(r), "", -1)
	wm.logFor(r).Info("webmail login", "user", acct.Address, "ip", remoteAddr(r))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (wm *Webmail) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	if _, tok := wm.current(r); tok != "" {
		wm.Sessions.end(tok)
	}
	setCookie(w, r, sessionCookieName(r), "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
