package discover

import (
	"strings"
	"testing"
)

// FuzzParseConfig: an autoconfig file from the network never crashes the parser, and what it
// yields is usable: a known protocol and TLS mode, a host, a port in range.
func FuzzParseConfig(f *testing.F) {
	f.Add(config)
	f.Add(`<clientConfig><emailProvider><incomingServer type="imap"><hostname>%EMAILDOMAIN%</hostname><port>0</port><socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>`)
	f.Add(`<clientConfig><emailProvider><outgoingServer type="smtp"><hostname>h</hostname><port>70000</port><socketType>plain</socketType></outgoingServer>`)
	f.Fuzz(func(t *testing.T, doc string) {
		in, out, err := parseConfig(strings.NewReader(doc), "a@b.test", "a", "b.test", "fuzz")
		if err != nil {
			return
		}
		for _, s := range append(in, out...) {
			if s.Host == "" || s.Port < 1 || s.Port > 65535 || (s.TLS != "tls" && s.TLS != "starttls" && s.TLS != "plain") {
				t.Fatalf("unusable server %+v", s)
			}
		}
		for _, s := range out {
			if s.Proto != "smtp" {
				t.Fatalf("outgoing %+v", s)
			}
		}
	})
}
