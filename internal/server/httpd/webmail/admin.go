package webmail

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// ManageFunc runs one management command (`petrel NOUN VERB ARGS...`, with stdin for a
// password) and returns what it printed. app passes the CLI's own entry point, so every
// action of the web admin is the code `petrel` runs from a shell: the two cannot disagree.
type ManageFunc func(ctx context.Context, args []string, stdin string) (output string, err error)

// Admins is the store's record of who may use the admin pages (store.Admins).
type Admins interface {
	IsAdmin(ctx context.Context, accountID int64) (bool, error)
}

// LiveFunc reads the dashboard's live figures (open connections by listener, deliveries,
// the queue) now; app passes the metrics registry's reader, so the page shows what a
// Prometheus scrape would.
type LiveFunc func() (any, error)

// SetLive gives the admin dashboard its live panels (GET /admin/live, polled by the page).
// Call it before serving.
func (wm *Webmail) SetLive(f LiveFunc) { wm.live = f }

// adminLive answers the live figures as JSON, with the web sessions open now.
func (wm *Webmail) adminLive(w http.ResponseWriter, r *http.Request, ses *session) {
	if wm.live == nil {
		apiError(w, http.StatusNotFound, "no live figures on this server")
		return
	}
	v, err := wm.live()
	if err != nil {
		wm.logFor(r).Warn("webmail: reading live figures", "err", err)
		apiError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, map[string]any{"time": wm.cfg.Now().UTC(), "web_sessions": wm.Sessions.Count(), "live": v})
}

// SetAdmin turns the admin pages on: adm says who is an admin (checked at every request,
// so `petrel account admin ADDRESS off` takes effect at once), run runs the commands.
// Call it before serving.
func (wm *Webmail) SetAdmin(adm Admins, run ManageFunc) {
	wm.admins, wm.manage = adm, run
}

// adminAction is one form of the admin page: the fields it takes and the command line it
// becomes. A field value never becomes a flag (values starting with "-" are refused) and
// only these commands can be run.
type adminAction struct {
	fields []string
	argv   func(v map[string]string) []string
	stdin  string // the field given on stdin (a password), "" for none
}

var adminActions = map[string]adminAction{
	"domain-add": {fields: []string{"domain"}, argv: func(v map[string]string) []string { return []string{"domain", "add", v["domain"]} }},
	"domain-del": {fields: []string{"domain"}, argv: func(v map[string]string) []string { return []string{"domain", "del", v["domain"]} }},
	"domain-catchall": {fields: []string{"domain", "address"}, argv: func(v map[string]string) []string {
		return []string{"domain", "catchall", v["domain"], v["address"]}
	}},
	"account-add":    {fields: []string{"address", "password"}, stdin: "password", argv: func(v map[string]string) []string { return []string{"account", "add", v["address"]} }},
	"account-del":    {fields: []string{"address"}, argv: func(v map[string]string) []string { return []string{"account", "del", v["address"]} }},
	"account-passwd": {fields: []string{"address", "password"}, stdin: "password", argv: func(v map[string]string) []string { return []string{"account", "passwd", v["address"]} }},
	"account-quota": {fields: []string{"address", "storage", "messages"}, argv: func(v map[string]string) []string {
		return []string{"account", "quota", v["address"], v["storage"], v["messages"]}
	}},
	"account-limits": {fields: []string{"address", "hour-messages", "hour-recipients", "day-messages", "day-recipients"}, argv: func(v map[string]string) []string {
		args := []string{"account", "limits", v["address"]}
		for _, f := range []string{"hour-messages", "hour-recipients", "day-messages", "day-recipients"} {
			if v[f] != "" {
				args = append(args, "--"+f, v[f])
			}
		}
		return args
	}},
	"account-pop3-delete": {fields: []string{"address", "policy"}, argv: func(v map[string]string) []string {
		return []string{"account", "pop3-delete", v["address"], v["policy"]}
	}},
	"account-admin": {fields: []string{"address", "admin"}, argv: func(v map[string]string) []string { return []string{"account", "admin", v["address"], v["admin"]} }},
	"alias-add": {fields: []string{"alias", "targets"}, argv: func(v map[string]string) []string {
		return append([]string{"alias", "add", v["alias"]}, strings.FieldsFunc(v["targets"], func(r rune) bool { return r == ',' || r == ' ' })...)
	}},
	"alias-del":     {fields: []string{"alias"}, argv: func(v map[string]string) []string { return []string{"alias", "del", v["alias"]} }},
	"queue-show":    {fields: []string{"id"}, argv: func(v map[string]string) []string { return []string{"queue", "show", v["id"]} }},
	"queue-retry":   {fields: []string{"id"}, argv: func(v map[string]string) []string { return []string{"queue", "retry", v["id"]} }},
	"queue-hold":    {fields: []string{"id"}, argv: func(v map[string]string) []string { return []string{"queue", "hold", v["id"]} }},
	"queue-release": {fields: []string{"id"}, argv: func(v map[string]string) []string { return []string{"queue", "release", v["id"]} }},
	"queue-delete":  {fields: []string{"id"}, argv: func(v map[string]string) []string { return []string{"queue", "delete", v["id"]} }},
	"queue-bounce":  {fields: []string{"id"}, argv: func(v map[string]string) []string { return []string{"queue", "bounce", v["id"]} }},
	"dns":           {fields: []string{"domain"}, argv: func(v map[string]string) []string { return []string{"dns", v["domain"]} }},
	"dkim-list":     {fields: []string{"domain"}, argv: func(v map[string]string) []string { return []string{"dkim", "list", v["domain"]} }},
}

// dashboard is what the admin page shows on top: each a read-only command.
var dashboard = []struct {
	Title string
	Args  []string
}{
	{"Domains", []string{"domain", "list"}},
	{"Accounts", []string{"account", "list"}},
	{"Aliases", []string{"alias", "list"}},
	{"Outbound queue", []string{"queue", "list"}},
}

type adminSection struct {
	Title, Output string
}

type adminPage struct {
	Address  string
	CSRF     string
	Sessions int
	Result   *adminSection // the action just run
	Sections []adminSection
}

// isAdmin reports whether the session's account is an admin now.
func (wm *Webmail) isAdmin(r *http.Request, ses *session) bool {
	if wm.admins == nil || wm.manage == nil {
		return false
	}
	ok, err := wm.admins.IsAdmin(r.Context(), ses.account.ID)
	if err != nil && !errors.Is(err, context.Canceled) {
		wm.logFor(r).Warn("webmail: admin check failed", "user", ses.account.Address, "err", err)
	}
	return err == nil && ok
}

// adminOnly wraps an admin handler: a session (authed: CSRF included) of an admin, else 403.
func (wm *Webmail) adminOnly(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return wm.authed(func(w http.ResponseWriter, r *http.Request, ses *session) {
		if !wm.isAdmin(r, ses) {
			wm.logFor(r).Info("webmail: admin page refused", "user", ses.account.Address, "path", r.URL.Path)
			http.Error(w, "403 this account is not an admin", http.StatusForbidden)
			return
		}
		h(w, r, ses)
	})
}

func (wm *Webmail) adminIndex(w http.ResponseWriter, r *http.Request, ses *session) {
	wm.renderAdmin(w, r, ses, nil)
}

func (wm *Webmail) renderAdmin(w http.ResponseWriter, r *http.Request, ses *session, result *adminSection) {
	p := adminPage{Address: ses.account.Address, CSRF: ses.csrf, Sessions: wm.Sessions.Count(), Result: result}
	for _, d := range dashboard {
		out, err := wm.manage(r.Context(), d.Args, "")
		if err != nil {
			out += err.Error()
		}
		p.Sections = append(p.Sections, adminSection{Title: d.Title, Output: out})
	}
	pageHeaders(w)
	render(w, "admin.html", p)
}

// adminRun runs one action of the admin page and shows the page with its output.
func (wm *Webmail) adminRun(w http.ResponseWriter, r *http.Request, ses *session) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	name := r.PostFormValue("action")
	act, ok := adminActions[name]
	if !ok {
		http.Error(w, "400 unknown action", http.StatusBadRequest)
		return
	}
	v := map[string]string{}
	for _, f := range act.fields {
		v[f] = strings.TrimSpace(r.PostFormValue(f))
		if strings.HasPrefix(v[f], "-") && !strings.HasSuffix(f, "-messages") && !strings.HasSuffix(f, "-recipients") {
			http.Error(w, "400 a value may not start with -", http.StatusBadRequest)
			return
		}
	}
	args := act.argv(v)
	for len(args) > 0 && args[len(args)-1] == "" {
		args = args[:len(args)-1] // optional trailing arguments left empty
	}
	stdin := ""
	if act.stdin != "" {
		stdin = v[act.stdin] + "\n"
	}
	out, err := wm.manage(r.Context(), args, stdin)
	if err != nil {
		out += "error: " + err.Error()
	}
	wm.logFor(r).Info("webmail: admin action", "user", ses.account.Address, "command", strings.Join(args[:min(2, len(args))], " "), "ok", err == nil)
	if err == nil && (name == "account-passwd" || name == "account-del") {
		// A new password or a deleted account ends the account's web sessions too.
		wm.revokeAddress(r.Context(), v["address"])
	}
	wm.renderAdmin(w, r, ses, &adminSection{Title: "petrel " + strings.Join(args, " "), Output: out})
}

// revokeAddress ends the web sessions of the account with this address, if it had any.
func (wm *Webmail) revokeAddress(_ context.Context, addr string) {
	wm.Sessions.mu.Lock()
	var ids []int64
	for _, s := range wm.Sessions.byID {
		if strings.EqualFold(s.account.Address, addr) {
			ids = append(ids, s.account.ID)
		}
	}
	wm.Sessions.mu.Unlock()
	for _, id := range ids {
		wm.Sessions.Revoke(id)
	}
}
