package httpd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"petrel/internal/store"
)

// domains is a Domains over a fixed set; "broken.example" fails like a store that is down.
type domains map[string]bool

func (d domains) Domain(_ context.Context, name string) (store.Domain, error) {
	if name == "broken.example" {
		return store.Domain{}, errors.New("database is locked")
	}
	if !d[name] {
		return store.Domain{}, store.ErrNotFound
	}
	return store.Domain{Name: name}, nil
}

var testServices = Services{
	Hostname:   "mail.example.net",
	IMAP:       []Endpoint{{993, true}, {143, false}},
	POP3:       []Endpoint{{995, true}, {110, false}},
	Submission: []Endpoint{{465, true}, {587, false}},
}

func setupServer(t *testing.T, tlsOn bool) (string, *http.Client) {
	mux := NewRoutes()
	log := slog.New(slog.DiscardHandler)
	ds := domains{"example.org": true, "xn--bcher-kva.example": true}
	(&ClientSetup{Services: testServices, Domains: ds, Log: log}).Register(mux)
	(&MTASTS{Policy: "version: STSv1\r\nmode: enforce\r\nmx: mail.example.net\r\nmax_age: 604800\r\n", Domains: ds, Log: log}).Register(mux)
	cfg := Config{}
	if tlsOn {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return testServer(t, cfg, mux)
}

// do sends req with the Host header host ("" keeps the URL's) and returns status, content
// type and body.
func do(t *testing.T, c *http.Client, req *http.Request, host string) (int, string, string) {
	t.Helper()
	if host != "" {
		req.Host = host
	}
	resp, body := fetch(t, c, req)
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// The test's own reading of config-v1.1.xml, written from the format's documentation
// rather than reusing the package's types.
type clientConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID        string   `xml:"id,attr"`
		Domain    []string `xml:"domain"`
		Name      string   `xml:"displayName"`
		ShortName string   `xml:"displayShortName"`
		Incoming  []server `xml:"incomingServer"`
		Outgoing  []server `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type server struct {
	Type     string `xml:"type,attr"`
	Hostname string `xml:"hostname"`
	Port     int    `xml:"port"`
	Socket   string `xml:"socketType"`
	Auth     string `xml:"authentication"`
	Username string `xml:"username"`
}

func TestAutoconfig(t *testing.T) {
	base, c := setupServer(t, false)
	want := func(typ string, port int, socket string) server {
		return server{typ, "mail.example.net", port, socket, "password-cleartext", "%EMAILADDRESS%"}
	}
	for _, tc := range []struct{ path, host, domain string }{
		{"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.org", "", "example.org"},
		{"/mail/config-v1.1.xml?emailaddress=Alice@EXAMPLE.org", "", "example.org"},
		{"/mail/config-v1.1.xml", "autoconfig.example.org", "example.org"},
		{"/.well-known/autoconfig/mail/config-v1.1.xml", "Example.ORG.", "example.org"},
		{"/mail/config-v1.1.xml?emailaddress=b%C3%BCcher%40b%C3%BCcher.example", "", "xn--bcher-kva.example"},
	} {
		req, _ := http.NewRequest("GET", base+tc.path, nil)
		code, ctype, body := do(t, c, req, tc.host)
		if code != 200 || ctype != "application/xml; charset=utf-8" {
			t.Errorf("%s (Host %q): %d %q\n%s", tc.path, tc.host, code, ctype, body)
			continue
		}
		var cc clientConfig
		if err := xml.Unmarshal([]byte(body), &cc); err != nil {
			t.Fatalf("%s: %v\n%s", tc.path, err, body)
		}
		p := cc.Provider
		if cc.Version != "1.1" || p.ID != tc.domain || !reflect.DeepEqual(p.Domain, []string{tc.domain}) || p.Name != tc.domain || p.ShortName != tc.domain {
			t.Errorf("%s: provider %+v", tc.path, cc)
		}
		wantIn := []server{want("imap", 993, "SSL"), want("imap", 143, "STARTTLS"), want("pop3", 995, "SSL"), want("pop3", 110, "STARTTLS")}
		wantOut := []server{want("smtp", 465, "SSL"), want("smtp", 587, "STARTTLS")}
		if !reflect.DeepEqual(p.Incoming, wantIn) || !reflect.DeepEqual(p.Outgoing, wantOut) {
			t.Errorf("%s: servers\n%+v\n%+v", tc.path, p.Incoming, p.Outgoing)
		}
	}
	for _, tc := range []struct {
		path, host string
		code       int
	}{
		{"/mail/config-v1.1.xml?emailaddress=alice@example.com", "", 404},    // not hosted
		{"/mail/config-v1.1.xml?emailaddress=<script>@example.org", "", 404}, // not an address
		{"/mail/config-v1.1.xml?emailaddress=alice@autoconfig.example.org", "", 404},
		{"/mail/config-v1.1.xml", "autoconfig.example.com", 404},         // not hosted
		{"/mail/config-v1.1.xml", "127.0.0.1", 404},                      // no domain at all
		{"/mail/config-v1.1.xml?emailaddress=a@broken.example", "", 503}, // store down
	} {
		req, _ := http.NewRequest("GET", base+tc.path, nil)
		code, _, body := do(t, c, req, tc.host)
		if code != tc.code || strings.Contains(body, "mail.example.net") {
			t.Errorf("%s (Host %q): %d, want %d\n%s", tc.path, tc.host, code, tc.code, body)
		}
	}
}

// The test's reading of an Autodiscover POX response (MS-OXDSCLI).
type autodiscoverResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
		Account struct {
			Type     string     `xml:"AccountType"`
			Action   string     `xml:"Action"`
			Protocol []protocol `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

type protocol struct {
	Type, Server                   string
	Port                           int
	LoginName, DomainRequired, SPA string
	SSL, Encryption, AuthRequired  string
}

func autodiscoverRequest(email string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>`)
	xml.EscapeText(&b, []byte(email))
	b.WriteString(`</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`)
	return b.String()
}

func TestAutodiscover(t *testing.T) {
	base, c := setupServer(t, true)
	// A quoted local part with XML's special characters travels through escaped.
	email := `"<a&b>"@example.org`
	for _, path := range []string{"/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"} {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(autodiscoverRequest(email)))
		code, ctype, body := do(t, c, req, "")
		if code != 200 || ctype != "text/xml; charset=utf-8" {
			t.Fatalf("%s: %d %q\n%s", path, code, ctype, body)
		}
		var r autodiscoverResponse
		if err := xml.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		a := r.Response.Account
		p := func(typ string, port int, enc string) protocol {
			return protocol{typ, "mail.example.net", port, email, "off", "off", "on", enc, "on"}
		}
		if a.Type != "email" || a.Action != "settings" ||
			!reflect.DeepEqual(a.Protocol, []protocol{p("IMAP", 993, "SSL"), p("POP3", 995, "SSL"), p("SMTP", 465, "SSL")}) {
			t.Errorf("%s: %+v\n%s", path, a, body)
		}
	}
	for _, tc := range []struct {
		body string
		code int
	}{
		{autodiscoverRequest("alice@example.com"), 404},
		{autodiscoverRequest(""), 404},
		{strings.Replace(autodiscoverRequest("alice@example.org"), "outlook/responseschema", "mobilesync/responseschema", 1), 404},
		{"<Autodiscover><Request>", 400},
		{"<Autodiscover><Request><EMailAddress>" + strings.Repeat("a", 20000) + "@example.org</EMailAddress></Request></Autodiscover>", 400},
	} {
		req, _ := http.NewRequest("POST", base+"/autodiscover/autodiscover.xml", strings.NewReader(tc.body))
		if code, _, body := do(t, c, req, ""); code != tc.code {
			t.Errorf("%.80s: %d, want %d\n%s", tc.body, code, tc.code, body)
		}
	}
}

// TestMobileconfig parses the profile with python3's plistlib (a real plist reader) and
// checks every field.
func TestMobileconfig(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is missing (.ci/run installs it)")
		}
		t.Skip("python3 not installed")
	}
	base, c := setupServer(t, true)
	email := `"<a&b>"@example.org`
	req, _ := http.NewRequest("GET", base+"/apple.mobileconfig?email="+strings.NewReplacer(`"`, "%22", "<", "%3C", "&", "%26", ">", "%3E").Replace(email), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-apple-aspen-config" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="example.org.mobileconfig"` {
		t.Fatalf("%d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	cmd := exec.Command(py, "-c", "import json, plistlib, sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))")
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("plistlib: %v\n%s", err, body)
	}
	var profile map[string]any
	if err := json.Unmarshal(out, &profile); err != nil {
		t.Fatal(err)
	}
	content, _ := profile["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("PayloadContent: %v", profile["PayloadContent"])
	}
	account := content[0].(map[string]any)
	uuid := `^[0-9A-F]{8}-[0-9A-F]{4}-8[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`
	check := func(what string, got map[string]any, want map[string]any) {
		for k, v := range want {
			if s, ok := v.(string); ok && strings.HasPrefix(s, "^") {
				if g, _ := got[k].(string); !regexpMatch(s, g) {
					t.Errorf("%s %s = %v, want match %s", what, k, got[k], s)
				}
			} else if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s %s = %#v, want %#v", what, k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: unexpected key %s = %v", what, k, got[k])
			}
		}
	}
	check("profile", profile, map[string]any{
		"PayloadContent":           profile["PayloadContent"],
		"PayloadDescription":       "Mail settings for " + email + " at mail.example.net",
		"PayloadDisplayName":       "Mail " + email,
		"PayloadIdentifier":        `^net\.example\.mail\.petrel\.mail\.[0-9A-F-]{36}$`,
		"PayloadOrganization":      "example.org",
		"PayloadRemovalDisallowed": false,
		"PayloadType":              "Configuration",
		"PayloadUUID":              uuid,
		"PayloadVersion":           float64(1),
	})
	check("account", account, map[string]any{
		"EmailAccountDescription":                email,
		"EmailAccountName":                       email,
		"EmailAccountType":                       "EmailTypeIMAP",
		"EmailAddress":                           email,
		"IncomingMailServerAuthentication":       "EmailAuthPassword",
		"IncomingMailServerHostName":             "mail.example.net",
		"IncomingMailServerPortNumber":           float64(993),
		"IncomingMailServerUseSSL":               true,
		"IncomingMailServerUsername":             email,
		"OutgoingMailServerAuthentication":       "EmailAuthPassword",
		"OutgoingMailServerHostName":             "mail.example.net",
		"OutgoingMailServerPortNumber":           float64(465),
		"OutgoingMailServerUseSSL":               true,
		"OutgoingMailServerUsername":             email,
		"OutgoingPasswordSameAsIncomingPassword": true,
		"PayloadDescription":                     "Mail account " + email,
		"PayloadDisplayName":                     email,
		"PayloadIdentifier":                      profile["PayloadIdentifier"].(string) + ".account",
		"PayloadType":                            "com.apple.mail.managed",
		"PayloadUUID":                            uuid,
		"PayloadVersion":                         float64(1),
	})
	if account["PayloadUUID"] == profile["PayloadUUID"] {
		t.Error("account and profile share a PayloadUUID")
	}
	if strings.Contains(strings.ToLower(string(body)), "password</key>\n  <string") {
		t.Error("the profile carries a password")
	}
	// The same address gets the same identifiers (a reinstall replaces the profile).
	resp, err = c.Do(req.Clone(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(again) != string(body) {
		t.Error("a second request got a different profile")
	}

	for _, tc := range []struct {
		query string
		code  int
	}{
		{"", 400},
		{"?email=alice@example.com", 404},
		{"?email=not-an-address", 404},
		{"?emailaddress=alice@broken.example", 503},
	} {
		req, _ := http.NewRequest("GET", base+"/apple.mobileconfig"+tc.query, nil)
		if code, _, body := do(t, c, req, ""); code != tc.code {
			t.Errorf("%q: %d, want %d\n%s", tc.query, code, tc.code, body)
		}
	}
}

// TestMTASTS: the policy is served over HTTPS to mta-sts.DOMAIN of a hosted domain only.
func TestMTASTS(t *testing.T) {
	base, c := setupServer(t, true)
	get := func(host string) (int, string, string) {
		req, _ := http.NewRequest("GET", base+"/.well-known/mta-sts.txt", nil)
		return do(t, c, req, host)
	}
	code, ctype, body := get("mta-sts.example.org")
	if code != 200 || ctype != "text/plain; charset=utf-8" || body != "version: STSv1\r\nmode: enforce\r\nmx: mail.example.net\r\nmax_age: 604800\r\n" {
		t.Errorf("policy: %d %q %q", code, ctype, body)
	}
	for _, host := range []string{"mta-sts.example.com", "example.org", "mta-sts.", "mta-sts.mta-sts.example.org"} {
		if code, _, _ := get(host); code != 404 {
			t.Errorf("Host %q: %d, want 404", host, code)
		}
	}
	plain, pc := setupServer(t, false)
	req, _ := http.NewRequest("GET", plain+"/.well-known/mta-sts.txt", nil)
	if code, _, _ := do(t, pc, req, "mta-sts.example.org"); code != 404 {
		t.Errorf("over plain HTTP: %d, want 404 (RFC 8461 §3.3)", code)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// BenchmarkAutoconfig is the handler's cost for one config-v1.1.xml (store look-up faked).
func BenchmarkAutoconfig(b *testing.B) {
	mux := NewRoutes()
	(&ClientSetup{Services: testServices, Domains: domains{"example.org": true}, Log: slog.New(slog.DiscardHandler)}).Register(mux)
	h := secureHeaders(mux, 0)
	req := httptest.NewRequest("GET", "/mail/config-v1.1.xml?emailaddress=alice@example.org", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
