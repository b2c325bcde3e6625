package httpd

import (
	"crypto/tls"
	"encoding/xml"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzClientSetup sends arbitrary host names, addresses and Autodiscover bodies to the
// unauthenticated handlers: no panic, only the documented status codes, a well-formed
// document when there is one, and never a document for a domain that is not hosted.
func FuzzClientSetup(f *testing.F) {
	for _, seed := range []struct{ host, email, body string }{
		{"autoconfig.example.org", "", ""},
		{"example.org", "alice@example.org", autodiscoverRequest("alice@example.org")},
		{"mta-sts.example.org", `"<a&b>"@example.org`, autodiscoverRequest(`"<a&b>"@example.org`)},
		{"127.0.0.1", "a@b@example.org", "<Autodiscover><Request><EMailAddress>x</EMailAddress>"},
		{"xn--bcher-kva.example", "b\u00fccher@B\u00dcCHER.example", "<!DOCTYPE x [<!ENTITY a 'b'>]><Autodiscover>&a;</Autodiscover>"},
	} {
		f.Add(seed.host, seed.email, seed.body)
	}
	mux := NewRoutes()
	log := slog.New(slog.DiscardHandler)
	ds := domains{"example.org": true, "xn--bcher-kva.example": true}
	(&ClientSetup{Services: testServices, Domains: ds, Log: log}).Register(mux)
	(&MTASTS{Policy: "version: STSv1\r\nmode: testing\r\nmx: mail.example.net\r\nmax_age: 86400\r\n", Domains: ds, Log: log}).Register(mux)
	h := secureHeaders(mux, 0)
	redirect := redirectHTTPS(mux, 8443)
	f.Fuzz(func(t *testing.T, host, email, body string) {
		// Plain HTTP: a redirect to the same host over HTTPS, or 400 for a host that is none.
		r := httptest.NewRequest("GET", "/x?a=1", nil)
		r.Host = host
		rec := httptest.NewRecorder()
		redirect.ServeHTTP(rec, r)
		switch loc := rec.Header().Get("Location"); {
		case rec.Code == 400:
		case rec.Code == 301 && RequestHost(r) != "" && (loc == "https://"+RequestHost(r)+":8443/x?a=1" || loc == "https://["+RequestHost(r)+"]:8443/x?a=1"):
		default:
			t.Fatalf("plain GET with Host %q: %d Location %q", host, rec.Code, loc)
		}

		q := "?emailaddress=" + url.QueryEscape(email) + "&email=" + url.QueryEscape(email)
		for _, r := range []*http.Request{
			httptest.NewRequest("GET", "/mail/config-v1.1.xml"+q, nil),
			httptest.NewRequest("GET", "/.well-known/autoconfig/mail/config-v1.1.xml", nil),
			httptest.NewRequest("GET", "/apple.mobileconfig"+q, nil),
			httptest.NewRequest("GET", "/.well-known/mta-sts.txt", nil),
			httptest.NewRequest("POST", "/autodiscover/autodiscover.xml", strings.NewReader(body)),
		} {
			r.Host = host
			r.TLS = &tls.ConnectionState{} // as over HTTPS: no redirect, MTA-STS served
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			switch rec.Code {
			case 200:
			case 400, 404:
				if strings.Contains(rec.Body.String(), "mail.example.net") {
					t.Fatalf("%s: %d with our settings in it", r.URL, rec.Code)
				}
				continue
			default:
				t.Fatalf("%s (Host %q): status %d", r.URL, host, rec.Code)
			}
			out := rec.Body.String()
			if r.URL.Path == "/.well-known/mta-sts.txt" {
				if d, _ := strings.CutPrefix(RequestHost(r), "mta-sts."); !ds[d] {
					t.Fatalf("policy served for Host %q", host)
				}
				continue
			}
			// Well-formed XML (the plist too), every token readable.
			dec := xml.NewDecoder(strings.NewReader(out))
			dec.Strict = true
			for {
				_, err := dec.Token()
				if err != nil {
					if err.Error() != "EOF" {
						t.Fatalf("%s: not well-formed: %v\n%s", r.URL, err, out)
					}
					break
				}
			}
			if !strings.Contains(out, "example.org") && !strings.Contains(out, "xn--bcher-kva.example") {
				t.Fatalf("%s: a document for no hosted domain:\n%s", r.URL, out)
			}
		}
	})
}
