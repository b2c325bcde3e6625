package httpd

// Client set-up: the documents mail clients fetch to configure an account from an address
// alone. Each names the same services (Services) for a hosted domain, and none is served for
// a domain Petrel does not host: a stranger's domain gets a 404, never our settings.
//
//   - Thunderbird autoconfig, config-v1.1.xml: https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat;
//     Thunderbird asks http(s)://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=ADDR
//     and https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml.
//   - Microsoft Autodiscover "POX" (MS-OXDSCLI): POST /autodiscover/autodiscover.xml with the
//     address in the request body; the "outlook" response schema lists IMAP, POP3 and SMTP.
//   - Apple configuration profile (an unsigned .mobileconfig, "Configuration Profile
//     Reference"): one com.apple.mail.managed payload; the password is never in it, the
//     device asks for it when the profile is installed.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"petrel/internal/lib/address"
	"petrel/internal/lib/connid"
	"petrel/internal/store"
)

// Endpoint is one port of a service; TLS: implicit TLS, else STARTTLS (or STLS).
type Endpoint struct {
	Port int
	TLS  bool
}

// Services is what clients are told to connect to. Implicit TLS comes first in each list
// (RFC 8314 §3: preferred over STARTTLS); a plaintext-only service is never offered.
type Services struct {
	Hostname   string // the server's name clients connect to
	IMAP       []Endpoint
	POP3       []Endpoint
	Submission []Endpoint
}

// Domains tells whether a domain is hosted; store.Store is one.
type Domains interface {
	Domain(ctx context.Context, name string) (store.Domain, error)
}

// ClientSetup serves the client set-up documents.
type ClientSetup struct {
	Services Services
	Domains  Domains
	Log      *slog.Logger
}

// Register adds the client set-up routes to mux.
func (c *ClientSetup) Register(mux *Routes) {
	mux.HandleFunc("GET /.well-known/autoconfig/mail/config-v1.1.xml", c.autoconfig)
	mux.HandleFunc("GET /mail/config-v1.1.xml", c.autoconfig)
	// Outlook asks with either case; ServeMux paths are case-sensitive.
	mux.HandleFunc("POST /autodiscover/autodiscover.xml", c.autodiscover)
	mux.HandleFunc("POST /Autodiscover/Autodiscover.xml", c.autodiscover)
	mux.HandleFunc("GET /apple.mobileconfig", c.mobileconfig)
}

// errNotHosted: the request names no domain, or one Petrel does not host (404).
var errNotHosted = errors.New("not a hosted domain")

// hosted returns the normalized domain if ds hosts it, else errNotHosted.
func hosted(ctx context.Context, ds Domains, domain string) (string, error) {
	a, err := address.Parse("postmaster@" + domain)
	if err != nil {
		return "", errNotHosted
	}
	if _, err := ds.Domain(ctx, a.Domain); errors.Is(err, store.ErrNotFound) {
		return "", errNotHosted
	} else if err != nil {
		return "", err
	}
	return a.Domain, nil
}

// account returns the address asked for (nil if none was given) and its hosted domain.
// Without an address the domain comes from the host name the client asked, autoconfig.DOMAIN
// (or DOMAIN itself for the .well-known path).
func (c *ClientSetup) account(r *http.Request, email string) (*address.Address, string, error) {
	if email != "" {
		a, err := address.Parse(email)
		if err != nil {
			return nil, "", errNotHosted
		}
		d, err := hosted(r.Context(), c.Domains, a.Domain)
		a.Domain = d
		return &a, d, err
	}
	host := RequestHost(r)
	d, err := hosted(r.Context(), c.Domains, strings.TrimPrefix(host, "autoconfig."))
	return nil, d, err
}

// mailbox is account for the documents that need an address: none gets the status
// missing, an unknown domain 404; ok is false when the answer has been sent.
func (c *ClientSetup) mailbox(w http.ResponseWriter, r *http.Request, email string, missing int) (*address.Address, string, bool) {
	if email == "" {
		http.Error(w, strconv.Itoa(missing)+" the address is missing", missing)
		return nil, "", false
	}
	a, d, err := c.account(r, email)
	if err != nil {
		notHosted(w, r, c.Log, err)
		return nil, "", false
	}
	return a, d, true
}

// notHosted answers an error of hosted: 404 for a domain not hosted, 503 when the store
// fails.
func notHosted(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if errors.Is(err, errNotHosted) {
		http.Error(w, "404 no mail service for this domain here", http.StatusNotFound)
		return
	}
	log.Error("domain lookup failed", "conn", connid.From(r.Context()), "err", err)
	http.Error(w, "503 try again later", http.StatusServiceUnavailable)
}

// Thunderbird's config-v1.1.xml.
type tbConfig struct {
	XMLName  xml.Name   `xml:"clientConfig"`
	Version  string     `xml:"version,attr"`
	Provider tbProvider `xml:"emailProvider"`
}

type tbProvider struct {
	ID        string     `xml:"id,attr"`
	Domain    string     `xml:"domain"`
	Name      string     `xml:"displayName"`
	ShortName string     `xml:"displayShortName"`
	Incoming  []tbServer `xml:"incomingServer"`
	Outgoing  []tbServer `xml:"outgoingServer"`
}

type tbServer struct {
	Type     string `xml:"type,attr"`
	Hostname string `xml:"hostname"`
	Port     int    `xml:"port"`
	Socket   string `xml:"socketType"`     // SSL (implicit TLS) or STARTTLS
	Auth     string `xml:"authentication"` // password-cleartext: PLAIN/LOGIN inside TLS
	Username string `xml:"username"`
}

func (c *ClientSetup) autoconfig(w http.ResponseWriter, r *http.Request) {
	_, domain, err := c.account(r, r.URL.Query().Get("emailaddress"))
	if err != nil {
		notHosted(w, r, c.Log, err)
		return
	}
	s := c.Services
	server := func(typ string, e Endpoint) tbServer {
		socket := "STARTTLS"
		if e.TLS {
			socket = "SSL"
		}
		// %EMAILADDRESS% is filled in by the client: Petrel's user name is the address.
		return tbServer{Type: typ, Hostname: s.Hostname, Port: e.Port, Socket: socket,
			Auth: "password-cleartext", Username: "%EMAILADDRESS%"}
	}
	cfg := tbConfig{Version: "1.1", Provider: tbProvider{ID: domain, Domain: domain, Name: domain, ShortName: domain}}
	for _, e := range s.IMAP {
		cfg.Provider.Incoming = append(cfg.Provider.Incoming, server("imap", e))
	}
	for _, e := range s.POP3 {
		cfg.Provider.Incoming = append(cfg.Provider.Incoming, server("pop3", e))
	}
	for _, e := range s.Submission {
		cfg.Provider.Outgoing = append(cfg.Provider.Outgoing, server("smtp", e))
	}
	writeXML(w, "application/xml", cfg)
}

func writeXML(w http.ResponseWriter, contentType string, v any) {
	b, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "500 internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType+"; charset=utf-8")
	// Settings change with the configuration; a day of caching is harmless.
	w.Header().Set("Cache-Control", "max-age=86400")
	io.WriteString(w, xml.Header)
	w.Write(b)
	io.WriteString(w, "\n")
}

// Autodiscover POX (MS-OXDSCLI §2.2.3 request, §2.2.4 response, "outlook" schema).
const (
	adRequestNS      = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	adResponseNS     = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	adOutlookNS      = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	maxAutodiscover  = 16 << 10 // a request is a few hundred bytes
	autodiscoverMIME = "text/xml"
)

type adRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		Email  string `xml:"EMailAddress"`
		Schema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

type adResponse struct {
	XMLName  xml.Name `xml:"Autodiscover"`
	NS       string   `xml:"xmlns,attr"`
	Response struct {
		NS      string `xml:"xmlns,attr"`
		Account struct {
			Type     string       `xml:"AccountType"`
			Action   string       `xml:"Action"`
			Protocol []adProtocol `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

type adProtocol struct {
	Type         string `xml:"Type"` // IMAP, POP3, SMTP
	Server       string `xml:"Server"`
	Port         int    `xml:"Port"`
	LoginName    string `xml:"LoginName"`
	DomainReq    string `xml:"DomainRequired"`
	SPA          string `xml:"SPA"`
	SSL          string `xml:"SSL"`
	Encryption   string `xml:"Encryption"` // SSL (implicit TLS) or TLS (STARTTLS); overrides SSL
	AuthRequired string `xml:"AuthRequired"`
}

func (c *ClientSetup) autodiscover(w http.ResponseWriter, r *http.Request) {
	var req adRequest
	if err := xml.NewDecoder(http.MaxBytesReader(w, r.Body, maxAutodiscover)).Decode(&req); err != nil {
		http.Error(w, "400 not an Autodiscover request", http.StatusBadRequest)
		return
	}
	if s := req.Request.Schema; s != "" && s != adOutlookNS {
		// Only the outlook schema lists IMAP/POP3/SMTP; mobilesync is Exchange ActiveSync.
		http.Error(w, "404 response schema not offered", http.StatusNotFound)
		return
	}
	a, _, ok := c.mailbox(w, r, strings.TrimSpace(req.Request.Email), http.StatusNotFound)
	if !ok {
		return
	}
	var resp adResponse
	resp.NS, resp.Response.NS = adResponseNS, adOutlookNS
	resp.Response.Account.Type, resp.Response.Account.Action = "email", "settings"
	for _, p := range []struct {
		typ string
		es  []Endpoint
	}{{"IMAP", c.Services.IMAP}, {"POP3", c.Services.POP3}, {"SMTP", c.Services.Submission}} {
		if len(p.es) == 0 {
			continue
		}
		e := p.es[0] // the preferred one: implicit TLS when there is such a port
		enc := "TLS"
		if e.TLS {
			enc = "SSL"
		}
		resp.Response.Account.Protocol = append(resp.Response.Account.Protocol, adProtocol{
			Type: p.typ, Server: c.Services.Hostname, Port: e.Port, LoginName: a.String(),
			DomainReq: "off", SPA: "off", SSL: "on", Encryption: enc, AuthRequired: "on",
		})
	}
	writeXML(w, autodiscoverMIME, resp)
}

// mobileconfig serves an Apple configuration profile for one address (?email=ADDR).
func (c *ClientSetup) mobileconfig(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	email := q.Get("email")
	if email == "" {
		email = q.Get("emailaddress")
	}
	a, domain, ok := c.mailbox(w, r, email, http.StatusBadRequest)
	if !ok {
		return
	}
	s := c.Services
	in, inType := s.IMAP, "EmailTypeIMAP"
	if len(in) == 0 {
		in, inType = s.POP3, "EmailTypePOP"
	}
	if len(in) == 0 || len(s.Submission) == 0 {
		http.Error(w, "404 no mail service to configure", http.StatusNotFound)
		return
	}
	addr := a.String()
	// Stable identifiers: installing the profile again replaces the account, not adds one.
	id := profileUUID(s.Hostname, strings.ToLower(addr))
	payloadID := reverseDNS(s.Hostname) + ".petrel.mail." + id
	account := plistDict{
		{"EmailAccountDescription", addr},
		{"EmailAccountName", addr},
		{"EmailAccountType", inType},
		{"EmailAddress", addr},
		{"IncomingMailServerAuthentication", "EmailAuthPassword"},
		{"IncomingMailServerHostName", s.Hostname},
		{"IncomingMailServerPortNumber", in[0].Port},
		// Apple's UseSSL means TLS, implicit or by STARTTLS, depending on the port.
		{"IncomingMailServerUseSSL", true},
		{"IncomingMailServerUsername", addr},
		{"OutgoingMailServerAuthentication", "EmailAuthPassword"},
		{"OutgoingMailServerHostName", s.Hostname},
		{"OutgoingMailServerPortNumber", s.Submission[0].Port},
		{"OutgoingMailServerUseSSL", true},
		{"OutgoingMailServerUsername", addr},
		{"OutgoingPasswordSameAsIncomingPassword", true},
		{"PayloadDescription", "Mail account " + addr},
		{"PayloadDisplayName", addr},
		{"PayloadIdentifier", payloadID + ".account"},
		{"PayloadType", "com.apple.mail.managed"},
		{"PayloadUUID", profileUUID(s.Hostname, "account "+strings.ToLower(addr))},
		{"PayloadVersion", 1},
	}
	profile := plistDict{
		{"PayloadContent", []plistDict{account}},
		{"PayloadDescription", "Mail settings for " + addr + " at " + s.Hostname},
		{"PayloadDisplayName", "Mail " + addr},
		{"PayloadIdentifier", payloadID},
		{"PayloadOrganization", domain},
		{"PayloadRemovalDisallowed", false},
		{"PayloadType", "Configuration"},
		{"PayloadUUID", id},
		{"PayloadVersion", 1},
	}
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	profile.write(&b, "")
	b.WriteString("</plist>\n")
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	// The domain passed hosted(), so it holds only [a-z0-9.-].
	w.Header().Set("Content-Disposition", `attachment; filename="`+domain+`.mobileconfig"`)
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, b.String())
}

// plistDict is a property list dictionary whose values are string, int, bool or []plistDict,
// written in the given key order. Written here rather than with a library: a profile needs
// these four types only, and encoding/xml escapes every string.
type plistDict []struct {
	key   string
	value any
}

func (d plistDict) write(b *strings.Builder, indent string) {
	b.WriteString(indent + "<dict>\n")
	in := indent + "  "
	for _, kv := range d {
		b.WriteString(in + "<key>")
		xml.EscapeText(b, []byte(kv.key))
		b.WriteString("</key>\n")
		switch v := kv.value.(type) {
		case string:
			b.WriteString(in + "<string>")
			xml.EscapeText(b, []byte(v))
			b.WriteString("</string>\n")
		case int:
			b.WriteString(in + "<integer>" + strconv.Itoa(v) + "</integer>\n")
		case bool:
			b.WriteString(in + "<" + strconv.FormatBool(v) + "/>\n")
		case []plistDict:
			b.WriteString(in + "<array>\n")
			for _, e := range v {
				e.write(b, in+"  ")
			}
			b.WriteString(in + "</array>\n")
		default:
			panic(fmt.Sprintf("plist: value of type %T", v))
		}
	}
	b.WriteString(indent + "</dict>\n")
}

// profileUUID is a name-based UUID (RFC 9562 version 8: SHA-256 of the names), so the same
// account on the same server always gets the same identifiers.
func profileUUID(names ...string) string {
	h := sha256.Sum256([]byte("petrel mobileconfig\x00" + strings.Join(names, "\x00")))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	x := strings.ToUpper(hex.EncodeToString(u))
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// reverseDNS turns mail.example.org into org.example.mail (payload identifiers).
func reverseDNS(host string) string {
	labels := strings.Split(host, ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return strings.Join(labels, ".")
}
