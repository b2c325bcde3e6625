package app

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"petrel/internal/config"
	"petrel/internal/mail/msgauth"
)

// DomainRecords are the DNS records a hosted domain needs: `petrel dns` prints them and
// `petrel check --dns` compares them with what DNS says, so the two cannot drift apart.
// Names are fully qualified, without the final dot.
type DomainRecords struct {
	Domain string
	Host   string // the mail host name: MX target, SRV and CNAME target
	// Services are the RFC 6186 / RFC 8314 SRV records of the configured listeners.
	Services []SRVRecord
	// Autoconfig is Thunderbird's set-up host (a CNAME to Host); Autodiscover the SRV
	// records by which Outlook finds its set-up host.
	Autoconfig   string
	Autodiscover []SRVRecord
	Auth         []msgauth.Record // SPF, DKIM (every selector), DMARC
	// MTASTS is nil when MTA-STS is off; else the policy host (a CNAME to Host) and the
	// TXT record whose id matches the policy served.
	MTASTS *MTASTSRecords
	// TLSA is the DANE record of the host's SMTP service (RFC 7672 §3): 3 1 1, the SHA-256
	// of the configured certificate's public key. Empty without a certificate file (the
	// development instance's is made at each start; an ACME key may change at renewal).
	TLSA []TLSARecord
	// TLSAError says why there is no TLSA record although a certificate is configured
	// (it cannot be read): the other records do not depend on it.
	TLSAError error
}

// SRVRecord is one SRV record.
type SRVRecord struct {
	Name                   string // e.g. "_imaps._tcp.example.org"
	Priority, Weight, Port int
	Target                 string
	Why                    string
}

// MTASTSRecords are the records of an MTA-STS domain (RFC 8461 §3).
type MTASTSRecords struct {
	PolicyHost string // mta-sts.DOMAIN, a CNAME to the host
	TXTName    string // _mta-sts.DOMAIN
	TXT        string // v=STSv1; id=...
}

// TLSARecord is one TLSA record; Data is lower-case hex.
type TLSARecord struct {
	Name                          string // _25._tcp.HOST
	Usage, Selector, MatchingType uint8
	Data                          string
}

// Value is the record's data as a zone file writes it.
func (r TLSARecord) Value() string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, r.Data)
}

// RecordsFor returns the records domain d needs under config c, with its DKIM keys.
func RecordsFor(c *config.Config, d string, keys []msgauth.Key) (DomainRecords, error) {
	host := strings.TrimSuffix(strings.ToLower(c.Hostname), ".")
	out := DomainRecords{Domain: d, Host: host, Autoconfig: "autoconfig." + d}
	services := []struct {
		name     string
		priority int // RFC 8314 §5.1: implicit TLS is preferred (lower) over STARTTLS
		addrs    []string
		why      string
	}{
		{"_submissions._tcp", 0, c.SMTP.Submissions, "submission, implicit TLS"},
		{"_submission._tcp", 10, c.SMTP.Submission, "submission, STARTTLS"},
		{"_imaps._tcp", 0, c.IMAP.ListenTLS, "IMAP, implicit TLS"},
		{"_imap._tcp", 10, c.IMAP.Listen, "IMAP, STARTTLS"},
		// RFC 6186 §3.4: priorities across _imap and _pop3 state the provider's preference;
		// IMAP keeps several devices in sync, so it comes first.
		{"_pop3s._tcp", 20, c.POP3.ListenTLS, "POP3, implicit TLS"},
		{"_pop3._tcp", 30, c.POP3.Listen, "POP3, STLS"},
	}
	for _, s := range services {
		for _, port := range ListenPorts(s.addrs) {
			out.Services = append(out.Services, SRVRecord{Name: s.name + "." + d, Priority: s.priority, Weight: 1, Port: port, Target: host, Why: s.why})
		}
	}
	for _, port := range ListenPorts(c.HTTP.ListenTLS) {
		out.Autodiscover = append(out.Autodiscover, SRVRecord{Name: "_autodiscover._tcp." + d, Weight: 1, Port: port, Target: host})
	}
	var err error
	if out.Auth, err = msgauth.Records(d, keys); err != nil {
		return DomainRecords{}, err
	}
	if _, id, ok := MTASTSPolicy(c); ok && len(c.HTTP.ListenTLS) > 0 {
		out.MTASTS = &MTASTSRecords{PolicyHost: "mta-sts." + d, TXTName: "_mta-sts." + d, TXT: "v=STSv1; id=" + id}
	}
	if c.TLS.Cert != "" && !c.ACME.Enabled {
		if data, err := certSPKIDigest(c.TLS.Cert); err != nil {
			out.TLSAError = err
		} else {
			out.TLSA = []TLSARecord{{Name: "_25._tcp." + host, Usage: 3, Selector: 1, MatchingType: 1, Data: data}}
		}
	}
	return out, nil
}

// certSPKIDigest is the hex SHA-256 of the public key of the first certificate in a PEM
// file: the data of a TLSA 3 1 1 record, which outlives certificates renewed on the same key.
func certSPKIDigest(file string) (string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("TLSA: %w", err)
	}
	for {
		var b *pem.Block
		if b, raw = pem.Decode(raw); b == nil {
			return "", fmt.Errorf("TLSA: no certificate in %s", file)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return "", fmt.Errorf("TLSA: %s: %w", file, err)
		}
		sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		return hex.EncodeToString(sum[:]), nil
	}
}
