package discover

import (
	"fmt"
	"strings"
)

// Provider guesses the OAuth provider preset (clientconf's oauth.provider) of a server that
// wants OAuth: "google", "microsoft", "generic"; "" when the servers take passwords.
func (r *Result) Provider() string {
	oauth := false
	for _, s := range append(append([]Server(nil), r.Incoming...), r.Outgoing...) {
		switch {
		case strings.HasSuffix(s.Host, ".gmail.com") || strings.HasSuffix(s.Host, ".googlemail.com"):
			return "google"
		case strings.HasSuffix(s.Host, ".office365.com") || strings.HasSuffix(s.Host, ".outlook.com"):
			return "microsoft"
		}
		oauth = oauth || s.OAuth
	}
	if oauth {
		return "generic"
	}
	return ""
}

// Block is the client config of the account: a commented TOML block for the client config
// file, with the best incoming server (withIn) and the best outgoing one (withOut).
func (r *Result) Block(name string, withIn, withOut bool) string {
	var b strings.Builder
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	fmt.Fprintf(&b, "\n# %s: written by `petrel --configure` from what it found:\n", r.Address)
	for _, s := range r.chosen(withIn, withOut) {
		fmt.Fprintf(&b, "#   %s %s (%s) from %s\n", s.Proto, s.Addr(), s.TLS, s.Source)
	}
	fmt.Fprintf(&b, "[accounts.%s]\n", name)
	user := r.Address
	if len(r.Incoming) > 0 {
		user = r.Incoming[0].User
	}
	fmt.Fprintf(&b, "user = %s\n", q(user))
	switch p := r.Provider(); p {
	case "":
		b.WriteString("# How petrel gets the password: a command printing it (or password_env = \"VAR\").\n")
		fmt.Fprintf(&b, "password_command = %s\n", q("pass show mail/"+r.Address))
	default:
		fmt.Fprintf(&b, "\n# The provider wants OAuth2: register an app with it, put its ID here, then run\n# `petrel auth login %s` once.\n", name)
		fmt.Fprintf(&b, "[accounts.%s.oauth]\nprovider = %s\nclient_id = \"YOUR-APP-CLIENT-ID\"\n# client_secret = \"\"\n", name, q(p))
		if p == "generic" {
			b.WriteString("# The provider's endpoints (placeholders: ask the provider for the real ones).\n")
			fmt.Fprintf(&b, "auth_url = %s\ntoken_url = %s\n", q("https://"+r.domain()+"/oauth2/authorize"), q("https://"+r.domain()+"/oauth2/token"))
		}
	}
	for _, s := range r.chosen(withIn, withOut) {
		fmt.Fprintf(&b, "\n[accounts.%s.%s]\nhost = %s\nport = %d\ntls = %s\n", name, s.Proto, q(s.Host), s.Port, q(s.TLS))
		if s.TLS == "plain" {
			b.WriteString("allow_plaintext = true  # the server offers no TLS: password and mail travel unprotected\n")
		}
		if s.Proto != "smtp" {
			fmt.Fprintf(&b, "archive = %s  # a Maildir\nmode = \"keep\"  # or \"delete\", \"keep-days\"\n", q("~/Mail/"+name))
		}
	}
	return b.String()
}

func (r *Result) domain() string {
	_, d, _ := strings.Cut(r.Address, "@")
	return strings.ToLower(d)
}

func (r *Result) chosen(withIn, withOut bool) []Server {
	var out []Server
	if withIn && len(r.Incoming) > 0 {
		out = append(out, r.Incoming[0])
	}
	if withOut && len(r.Outgoing) > 0 {
		out = append(out, r.Outgoing[0])
	}
	return out
}
