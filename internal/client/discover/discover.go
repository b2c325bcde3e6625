// Package discover finds the mail servers of an address the way mail clients do, for
// `petrel fetch --configure` and `petrel send --configure`:
//
//  1. Thunderbird autoconfig: the domain's own file (https://autoconfig.DOMAIN/mail/config-v1.1.xml,
//     then https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml), then Mozilla's ISPDB
//     (https://autoconfig.thunderbird.net/v1.1/DOMAIN); the first valid answer wins.
//  2. SRV records (RFC 6186, with RFC 8314's implicit-TLS services): _imaps, _imap, _pop3s,
//     _pop3, _submissions, _submission; a target of "." means "not offered" (RFC 6186 §4).
//  3. Guesses from the names mail clients try and from the MX host: the ISPDB entry of the MX
//     host's domain (aspmx.l.google.com → google.com), then imap.DOMAIN, mail.DOMAIN and the
//     MX host on the standard ports; a guess counts only if a TLS handshake with it succeeds
//     with a valid certificate.
//
// Every server found can be checked (Check): a TLS handshake, implicit or after STARTTLS,
// that verifies the certificate for the host name. The resolver, the HTTP client, the
// autoconfig URLs and the TLS roots are the Finder's, so tests point them at loopback.
package discover

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Server is one server found for the address.
type Server struct {
	Proto  string // "imap", "pop3" or "smtp"
	Host   string
	Port   int
	TLS    string // "tls" (implicit), "starttls" or "plain", as clientconf spells it
	User   string // the login name
	OAuth  bool   // the source says the server wants OAuth2
	Source string // where it was found, for the user
}

// Addr is host:port.
func (s Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Result is what Find found: servers in order of preference (implicit TLS first, IMAP before
// POP3), and what was tried.
type Result struct {
	Address  string
	Incoming []Server
	Outgoing []Server
	Tried    []string
}

// Finder looks servers up. The zero value uses the system's resolver, roots and HTTP.
type Finder struct {
	// Resolver answers MX and SRV queries and names for connections (default: the system's).
	Resolver *net.Resolver
	// HTTP fetches autoconfig files (default: a client with a 15 s timeout whose
	// connections use Resolver).
	HTTP *http.Client
	// AutoconfigURLs lists the autoconfig files to try for an address (default: the three
	// places of the package comment).
	AutoconfigURLs func(domain, address string) []string
	// TLS holds the roots Check trusts (default: the system's).
	TLS *tls.Config
	// Timeout bounds each connection of Check (default 10 s).
	Timeout time.Duration
	// GuessPorts maps the standard ports the guesses try (993, 995, 465, 587) to others
	// (tests, which cannot bind them).
	GuessPorts map[int]int
}

func (f *Finder) port(std int) int {
	if p, ok := f.GuessPorts[std]; ok {
		return p
	}
	return std
}

func (f *Finder) dialer() *net.Dialer {
	return &net.Dialer{Resolver: f.Resolver, Timeout: cmp(f.Timeout, 10*time.Second)}
}

func cmp(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (f *Finder) http() *http.Client {
	if f.HTTP != nil {
		return f.HTTP
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DialContext: f.dialer().DialContext}}
}

// DefaultAutoconfigURLs are Thunderbird's places, in its order.
func DefaultAutoconfigURLs(domain, address string) []string {
	q := "?emailaddress=" + url.QueryEscape(address)
	return []string{
		"https://autoconfig." + domain + "/mail/config-v1.1.xml" + q,
		"https://" + domain + "/.well-known/autoconfig/mail/config-v1.1.xml" + q,
		"https://autoconfig.thunderbird.net/v1.1/" + domain,
	}
}

// Find looks up the servers of address.
func (f *Finder) Find(ctx context.Context, address string) (*Result, error) {
	local, domain, ok := strings.Cut(address, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(address, " /?#") {
		return nil, fmt.Errorf("%q is not a mail address", address)
	}
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	r := &Result{Address: address}
	urls := DefaultAutoconfigURLs
	if f.AutoconfigURLs != nil {
		urls = f.AutoconfigURLs
	}
	if f.autoconfig(ctx, r, urls(domain, address), local, domain) {
		return r, nil
	}
	if f.srv(ctx, r, domain) {
		return r, nil
	}
	f.guess(ctx, r, domain, local, urls)
	if len(r.Incoming) == 0 && len(r.Outgoing) == 0 {
		return r, fmt.Errorf("no mail servers found for %s (tried: %s)", domain, strings.Join(r.Tried, "; "))
	}
	return r, nil
}

// autoconfig tries each URL in turn; true when one gave servers.
func (f *Finder) autoconfig(ctx context.Context, r *Result, urls []string, local, domain string) bool {
	for _, u := range urls {
		r.Tried = append(r.Tried, "autoconfig "+u)
		in, out, err := f.fetchConfig(ctx, u, r.Address, local, domain)
		if err != nil {
			continue
		}
		if len(in)+len(out) > 0 {
			r.Incoming, r.Outgoing = in, out
			return true
		}
	}
	return false
}

// clientConfig is the autoconfig format (Thunderbird's config-v1.1.xml); only what petrel uses.
type clientConfig struct {
	Providers []struct {
		Domains  []string       `xml:"domain"`
		Incoming []serverConfig `xml:"incomingServer"`
		Outgoing []serverConfig `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type serverConfig struct {
	Type       string   `xml:"type,attr"`
	Hostname   string   `xml:"hostname"`
	Port       int      `xml:"port"`
	SocketType string   `xml:"socketType"`
	Username   string   `xml:"username"`
	Auth       []string `xml:"authentication"`
}

func (f *Finder) fetchConfig(ctx context.Context, u, address, local, domain string) (in, out []Server, err error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := f.http().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return parseConfig(io.LimitReader(resp.Body, 1<<20), address, local, domain, "autoconfig "+u)
}

// parseConfig reads an autoconfig file; servers it cannot use (unknown types or socket types,
// bad ports) are left out.
func parseConfig(r io.Reader, address, local, domain, source string) (in, out []Server, err error) {
	var cc clientConfig
	if err := xml.NewDecoder(r).Decode(&cc); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", source, err)
	}
	expand := strings.NewReplacer("%EMAILADDRESS%", address, "%EMAILLOCALPART%", local, "%EMAILDOMAIN%", domain)
	conv := func(sc serverConfig) (Server, bool) {
		tlsMode := map[string]string{"SSL": "tls", "TLS": "tls", "STARTTLS": "starttls", "plain": "plain"}[sc.SocketType]
		proto := strings.ToLower(sc.Type)
		if tlsMode == "" || sc.Hostname == "" || sc.Port < 1 || sc.Port > 65535 || !slices.Contains([]string{"imap", "pop3", "smtp"}, proto) {
			return Server{}, false
		}
		user := expand.Replace(sc.Username)
		if user == "" {
			user = address
		}
		return Server{Proto: proto, Host: strings.ToLower(expand.Replace(sc.Hostname)), Port: sc.Port, TLS: tlsMode, User: user,
			OAuth: slices.Contains(sc.Auth, "OAuth2"), Source: source}, true
	}
	for _, p := range cc.Providers {
		for _, sc := range p.Incoming {
			if s, ok := conv(sc); ok && s.Proto != "smtp" {
				in = append(in, s)
			}
		}
		for _, sc := range p.Outgoing {
			if s, ok := conv(sc); ok && s.Proto == "smtp" {
				out = append(out, s)
			}
		}
	}
	sortServers(in)
	sortServers(out)
	return in, out, nil
}

// sortServers orders by preference, stably: IMAP before POP3 (it keeps the mail on the
// server for other devices), implicit TLS before STARTTLS before plain (RFC 8314 §3).
func sortServers(s []Server) {
	rank := func(x Server) int {
		r := map[string]int{"tls": 0, "starttls": 1, "plain": 2}[x.TLS]
		if x.Proto == "pop3" {
			r += 10
		}
		return r
	}
	slices.SortStableFunc(s, func(a, b Server) int { return rank(a) - rank(b) })
}

// srv looks the RFC 6186 / 8314 services up; true when it found servers.
func (f *Finder) srv(ctx context.Context, r *Result, domain string) bool {
	res := f.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	for _, svc := range []struct{ name, proto, tls string }{
		{"imaps", "imap", "tls"}, {"imap", "imap", "starttls"}, {"pop3s", "pop3", "tls"}, {"pop3", "pop3", "starttls"},
		{"submissions", "smtp", "tls"}, {"submission", "smtp", "starttls"},
	} {
		r.Tried = append(r.Tried, "SRV _"+svc.name+"._tcp."+domain)
		_, recs, err := res.LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			continue
		}
		// LookupSRV sorts by priority and randomizes by weight (RFC 2782).
		for _, rec := range recs {
			target := strings.TrimSuffix(rec.Target, ".")
			if target == "" { // "." : not offered here (RFC 6186 §4)
				break
			}
			s := Server{Proto: svc.proto, Host: strings.ToLower(target), Port: int(rec.Port), TLS: svc.tls, User: r.Address,
				Source: "SRV _" + svc.name + "._tcp." + domain}
			if s.Proto == "smtp" {
				r.Outgoing = append(r.Outgoing, s)
			} else {
				r.Incoming = append(r.Incoming, s)
			}
			break // the best record of each service is enough
		}
	}
	sortServers(r.Incoming)
	sortServers(r.Outgoing)
	return len(r.Incoming)+len(r.Outgoing) > 0
}

// guess tries the MX host's ISPDB entry, then the usual names, keeping those that answer TLS
// with a valid certificate.
func (f *Finder) guess(ctx context.Context, r *Result, domain, local string, urls func(domain, address string) []string) {
	res := f.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	hosts := []string{"imap." + domain, "mail." + domain}
	r.Tried = append(r.Tried, "MX "+domain)
	if mxs, err := res.LookupMX(ctx, domain); err == nil && len(mxs) > 0 {
		mx := strings.ToLower(strings.TrimSuffix(mxs[0].Host, "."))
		labels := strings.Split(mx, ".")
		if len(labels) >= 2 {
			base := strings.Join(labels[len(labels)-2:], ".")
			if base != domain {
				// The MX host's provider may have an autoconfig entry (ISPDB) for its own domain.
				u := urls(base, r.Address)
				if f.autoconfig(ctx, r, u[len(u)-1:], local, domain) {
					return
				}
			}
		}
		hosts = append(hosts, mx)
	}
	var smtpHosts []string
	for _, h := range hosts {
		smtpHosts = append(smtpHosts, strings.Replace(h, "imap.", "smtp.", 1))
	}
	try := func(list []Server) (Server, bool) {
		for _, s := range list {
			r.Tried = append(r.Tried, "guess "+s.Addr())
			if f.Check(ctx, s) == nil {
				return s, true
			}
		}
		return Server{}, false
	}
	var in, out []Server
	for _, h := range hosts {
		in = append(in, Server{Proto: "imap", Host: h, Port: f.port(993), TLS: "tls", User: r.Address, Source: "guess"})
	}
	for _, h := range hosts {
		in = append(in, Server{Proto: "pop3", Host: h, Port: f.port(995), TLS: "tls", User: r.Address, Source: "guess"})
	}
	for _, h := range smtpHosts {
		out = append(out, Server{Proto: "smtp", Host: h, Port: f.port(465), TLS: "tls", User: r.Address, Source: "guess"},
			Server{Proto: "smtp", Host: h, Port: f.port(587), TLS: "starttls", User: r.Address, Source: "guess"})
	}
	if s, ok := try(in); ok {
		r.Incoming = []Server{s}
	}
	if s, ok := try(out); ok {
		r.Outgoing = []Server{s}
	}
}

// Check connects to s and completes a TLS handshake that verifies its certificate for s.Host:
// at once for implicit TLS, after STARTTLS (IMAP), STLS (POP3) or EHLO+STARTTLS (SMTP)
// otherwise. A plain server is only connected to.
func (f *Finder) Check(ctx context.Context, s Server) error {
	ctx, cancel := context.WithTimeout(ctx, cmp(f.Timeout, 10*time.Second))
	defer cancel()
	conn, err := f.dialer().DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	conf := &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
	if f.TLS != nil {
		conf = f.TLS.Clone()
		conf.ServerName = s.Host
	}
	switch s.TLS {
	case "plain":
		return nil
	case "starttls":
		if err := startTLS(conn, s.Proto); err != nil {
			return fmt.Errorf("%s: %w", s.Addr(), err)
		}
	}
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("%s: %w", s.Addr(), err)
	}
	return nil
}

// startTLS runs the protocol's upgrade command up to the point where TLS starts.
func startTLS(conn net.Conn, proto string) error {
	br := bufio.NewReader(conn)
	line := func() (string, error) {
		l, err := br.ReadString('\n')
		return strings.TrimRight(l, "\r\n"), err
	}
	expect := func(ok func(string) bool, more func(string) bool) error {
		for {
			l, err := line()
			if err != nil {
				return err
			}
			if more != nil && more(l) {
				continue
			}
			if !ok(l) {
				return fmt.Errorf("unexpected answer %q", l)
			}
			return nil
		}
	}
	send := func(s string) error { _, err := io.WriteString(conn, s+"\r\n"); return err }
	var err error
	switch proto {
	case "imap":
		if err = expect(func(l string) bool { return strings.HasPrefix(l, "* OK") }, nil); err == nil {
			if err = send("a STARTTLS"); err == nil {
				err = expect(func(l string) bool { return strings.HasPrefix(l, "a OK") }, func(l string) bool { return strings.HasPrefix(l, "* ") })
			}
		}
	case "pop3":
		if err = expect(func(l string) bool { return strings.HasPrefix(l, "+OK") }, nil); err == nil {
			if err = send("STLS"); err == nil {
				err = expect(func(l string) bool { return strings.HasPrefix(l, "+OK") }, nil)
			}
		}
	case "smtp":
		multi := func(l string) bool { return len(l) > 3 && l[3] == '-' }
		if err = expect(func(l string) bool { return strings.HasPrefix(l, "220") }, multi); err == nil {
			if err = send("EHLO localhost"); err == nil {
				if err = expect(func(l string) bool { return strings.HasPrefix(l, "250") }, multi); err == nil {
					if err = send("STARTTLS"); err == nil {
						err = expect(func(l string) bool { return strings.HasPrefix(l, "220") }, nil)
					}
				}
			}
		}
	default:
		err = errors.New("unknown protocol " + proto)
	}
	if err == nil && br.Buffered() > 0 {
		return errors.New("data after the STARTTLS answer") // a man-in-the-middle's injection
	}
	return err
}
