package mx

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

func TestVerifyDANE(t *testing.T) {
	ca := mailtest.NewCA(t)
	other := mailtest.NewCA(t)
	cert := ca.Issue(t, "mx.example.test")
	leaf := cert.Leaf
	chain := []*x509.Certificate{leaf, ca.Cert}
	now := time.Now()
	cases := []struct {
		name    string
		records []TLSA
		names   []string
		at      time.Time
		chain   []*x509.Certificate
		err     string // "" for success
	}{
		{"EE spki sha256", []TLSA{TLSAFor(leaf, 3, 1, 1)}, nil, now, chain, ""},
		{"EE full exact", []TLSA{TLSAFor(leaf, 3, 0, 0)}, nil, now, chain, ""},
		{"EE sha512 among others", []TLSA{TLSAFor(ca.Cert, 3, 1, 1), TLSAFor(leaf, 3, 1, 2)}, nil, now, chain, ""},
		// DANE-EE ignores names and dates (RFC 7672 §3.1.1).
		{"EE expired, other name", []TLSA{TLSAFor(leaf, 3, 1, 1)}, []string{"x.test"}, now.Add(48 * time.Hour), chain, ""},
		{"EE mismatch", []TLSA{TLSAFor(other.Cert, 3, 1, 1)}, nil, now, chain, "no TLSA record matches"},
		{"TA", []TLSA{TLSAFor(ca.Cert, 2, 0, 1)}, []string{"mx.example.test"}, now, chain, ""},
		{"TA second name", []TLSA{TLSAFor(ca.Cert, 2, 1, 1)}, []string{"alias.test", "mx.example.test"}, now, chain, ""},
		{"TA wrong name", []TLSA{TLSAFor(ca.Cert, 2, 1, 1)}, []string{"evil.test"}, now, chain, "evil.test"},
		{"TA expired", []TLSA{TLSAFor(ca.Cert, 2, 1, 1)}, []string{"mx.example.test"}, now.Add(48 * time.Hour), chain, "expired"},
		{"TA not in chain", []TLSA{TLSAFor(ca.Cert, 2, 1, 1)}, []string{"mx.example.test"}, now, chain[:1], "no TLSA record matches"},
		{"TA of another CA", []TLSA{TLSAFor(other.Cert, 2, 1, 1)}, []string{"mx.example.test"}, now, append(chain, other.Cert), "unknown authority"},
		// PKIX-EE is unusable for SMTP (RFC 7672 §3.1.3) even when it matches.
		{"PKIX-EE unusable", []TLSA{TLSAFor(leaf, 1, 1, 1)}, []string{"mx.example.test"}, now, chain, "no TLSA record matches"},
		{"no certificate", []TLSA{TLSAFor(leaf, 3, 1, 1)}, nil, now, nil, "no certificate"},
	}
	for _, tc := range cases {
		err := VerifyDANE(tc.chain, tc.records, tc.names, tc.at)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.err)
		}
	}
}

func TestVerifyPKIX(t *testing.T) {
	ca := mailtest.NewCA(t)
	cert := ca.Issue(t, "mx.example.test")
	chain := []*x509.Certificate{cert.Leaf}
	if err := VerifyPKIX(chain, ca.Pool, "mx.example.test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := VerifyPKIX(chain, ca.Pool, "other.test", time.Now()); err == nil {
		t.Fatal("wrong name accepted")
	}
	if err := VerifyPKIX(chain, mailtest.NewCA(t).Pool, "mx.example.test", time.Now()); err == nil {
		t.Fatal("unknown CA accepted")
	}
}
