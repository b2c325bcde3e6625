package httpd

import (
	"log/slog"
	"net/http"
	"strings"
)

// MTASTS serves the MTA-STS policy (RFC 8461 §3.3) at
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt for every hosted DOMAIN. The policy names
// this server's MX host, so it is the same text for every domain.
type MTASTS struct {
	Policy  string // the policy file, CRLF line ends (RFC 8461 §3.2)
	Domains Domains
	Log     *slog.Logger
}

// Register adds the policy route to mux.
func (m *MTASTS) Register(mux *Routes) {
	mux.HandleFunc("GET /.well-known/mta-sts.txt", m.serve)
}

func (m *MTASTS) serve(w http.ResponseWriter, r *http.Request) {
	// RFC 8461 §3.3: fetched over HTTPS only, from the host mta-sts.DOMAIN; anything else
	// is not a policy request.
	host := RequestHost(r)
	domain, ok := strings.CutPrefix(host, "mta-sts.")
	if r.TLS == nil || !ok {
		http.NotFound(w, r)
		return
	}
	if _, err := hosted(r.Context(), m.Domains, domain); err != nil {
		notHosted(w, r, m.Log, err)
		return
	}
	// RFC 8461 §3.3: media type text/plain; the policy is ASCII.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(m.Policy))
}
