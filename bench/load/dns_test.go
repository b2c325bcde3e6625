package load

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"
)

// TestDNSServer: each record type is answered over UDP and TCP, a long TXT is
// split into strings and comes back whole over TCP after a truncated UDP
// answer, an unknown name is NXDOMAIN and a known name without the type is an
// empty NOERROR.
func TestDNSServer(t *testing.T) {
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 600)
	var rrs []dns.RR
	for _, r := range []string{"sink.test MX 10 mx.sink.test", "mx.sink.test A 127.0.0.1",
		"bench.test TXT v=spf1 ip4:127.0.0.0/8 -all", "k._domainkey.bench.test TXT " + long} {
		rr, err := ParseRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	for _, bad := range []string{"x A", "x A 300.1.1.1", "x MX mx", "x AAAA ::1", "x MX 10 a b"} {
		if _, err := ParseRecord(bad); err == nil {
			t.Errorf("ParseRecord(%q) accepted", bad)
		}
	}
	s, err := StartDNS("127.0.0.1:0", rrs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ask := func(net, name string, qtype uint16) *dns.Msg {
		t.Helper()
		c := &dns.Client{Net: net}
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, _, err := c.Exchange(m, s.Addr())
		if err != nil {
			t.Fatalf("%s %s: %v", net, name, err)
		}
		return r
	}
	for _, network := range []string{"udp", "tcp"} {
		if r := ask(network, "SINK.test.", dns.TypeMX); len(r.Answer) != 1 || r.Answer[0].(*dns.MX).Mx != "mx.sink.test." {
			t.Errorf("%s MX: %v", network, r)
		}
		if r := ask(network, "mx.sink.test.", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
			t.Errorf("%s A: %v", network, r)
		}
		if r := ask(network, "bench.test.", dns.TypeTXT); len(r.Answer) != 1 || strings.Join(r.Answer[0].(*dns.TXT).Txt, "") != "v=spf1 ip4:127.0.0.0/8 -all" {
			t.Errorf("%s TXT: %v", network, r)
		}
		if r := ask(network, "nowhere.test.", dns.TypeA); r.Rcode != dns.RcodeNameError {
			t.Errorf("%s unknown name: rcode %d", network, r.Rcode)
		}
		if r := ask(network, "bench.test.", dns.TypeMX); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
			t.Errorf("%s no MX: %v", network, r)
		}
	}
	r := ask("tcp", "k._domainkey.bench.test.", dns.TypeTXT)
	if len(r.Answer) != 1 || strings.Join(r.Answer[0].(*dns.TXT).Txt, "") != long || len(r.Answer[0].(*dns.TXT).Txt) != 3 {
		t.Errorf("long TXT over TCP: %v", r)
	}
	if s.Queries() == 0 {
		t.Error("no queries counted")
	}
}

// TestSignedMessages: with a DKIMSigner every message carries a signature that
// go-msgauth verifies against the key's record, for RSA and Ed25519 keys, for
// messages whose headers differ (and so whose body lengths differ).
func TestSignedMessages(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, k string
		key     any
	}{{"rsa", "rsa", rsaKey}, {"ed25519", "ed25519", edKey}} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := x509.MarshalPKCS8PrivateKey(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
			signer, err := LoadDKIMKey(file, "bench.test", "sel")
			if err != nil {
				t.Fatal(err)
			}
			var p []byte
			switch k := tc.key.(type) {
			case *rsa.PrivateKey:
				p, _ = x509.MarshalPKIXPublicKey(&k.PublicKey)
			case ed25519.PrivateKey:
				p = k.Public().(ed25519.PublicKey)
			}
			record := "v=DKIM1; k=" + tc.k + "; p=" + base64.StdEncoding.EncodeToString(p)
			opts := &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
				if name != "sel._domainkey.bench.test" {
					t.Errorf("looked up %q", name)
				}
				return []string{record}, nil
			}}
			m := newMessageMaker("load@bench.test", 2048, signer)
			for seq, to := range [][]string{{"a@example.test"}, {"user100@example.test"}, {"a@example.test", "b@example.test"}} {
				var b bytes.Buffer
				if _, err := m.write(&b, seq*1000, to); err != nil {
					t.Fatal(err)
				}
				vs, err := dkim.VerifyWithOptions(bytes.NewReader(b.Bytes()), opts)
				if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "bench.test" {
					t.Fatalf("message %d: %v %+v", seq, err, vs)
				}
				// The signature covers the body: a changed body fails.
				bad := bytes.Replace(b.Bytes(), []byte("quick brown"), []byte("quick green"), 1)
				if vs, err := dkim.VerifyWithOptions(bytes.NewReader(bad), opts); err != nil || vs[0].Err == nil {
					t.Errorf("message %d with a changed body verified: %v %+v", seq, err, vs)
				}
			}
			if len(signer.fields) != 3 {
				t.Errorf("%d signatures made for 3 body lengths", len(signer.fields))
			}
		})
	}
}

// TestRunDNSStops: RunDNS answers until its context ends.
func TestRunDNSStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := RunDNS(ctx, DNSConfig{Listen: "127.0.0.1:0", Records: []string{"a.test A 127.0.0.1"}})
	if err != nil || res.Scenario != "dns" {
		t.Fatalf("%v %+v", err, res)
	}
	if _, err := RunDNS(ctx, DNSConfig{Listen: "127.0.0.1:0", Records: []string{"a.test CNAME b.test"}}); err == nil {
		t.Error("a bad record was accepted")
	}
}
