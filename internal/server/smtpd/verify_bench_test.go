package smtpd_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"petrel/internal/mail/msgauth"
	"petrel/internal/mailtest"
	"petrel/internal/outbound/mx"
	"petrel/internal/server/smtpd"
)

// The cost of inbound verification: 2 KB messages over 32 connections from a sender whose
// SPF passes and whose DMARC policy is p=reject, unsigned or with one DKIM signature, with
// a DNS server on loopback answering (as a local caching resolver would). "off" is the
// same load without verification; "nocache" asks DNS for every message.
//
//	go test -run '^$' -bench 'InboundVerify' -benchtime 20000x ./internal/server/smtpd

// BenchmarkInboundVerify is the SMTP layer alone (a Deliverer that stores nothing): the
// verification's cost against the cheapest possible rest.
func BenchmarkInboundVerify(b *testing.B) {
	benchVerify(b, func(b *testing.B, cfg smtpd.Config) (string, []string) {
		return smtpd.StartBenchServer(b, cfg), []string{"alice@example.test"}
	})
}

// BenchmarkInboundVerifySQLite is the whole inbound path into the SQLite store.
func BenchmarkInboundVerifySQLite(b *testing.B) {
	benchVerify(b, func(b *testing.B, cfg smtpd.Config) (string, []string) {
		rcpts := make([]string, 8)
		for i := range rcpts {
			rcpts[i] = fmt.Sprintf("user%d@example.test", i+1)
		}
		return smtpd.StartStoreServer(b, 8, cfg), rcpts
	})
}

func benchVerify(b *testing.B, start func(*testing.B, smtpd.Config) (string, []string)) {
	rsaKey, err := msgauth.GenerateKey("bench.test", "r1", msgauth.RSA, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	edKey, err := msgauth.GenerateKey("bench.test", "e1", msgauth.Ed25519, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	zone := mailtest.Zone{TXT: map[string][]string{
		"bench.test":        {"v=spf1 ip4:127.0.0.0/8 -all"},
		"_dmarc.bench.test": {"v=DMARC1; p=reject"},
	}}
	for _, k := range []msgauth.Key{rsaKey, edKey} {
		rec, err := k.Record()
		if err != nil {
			b.Fatal(err)
		}
		zone.TXT[k.RecordName()] = []string{rec}
	}
	d := mailtest.StartDNS(b, zone)

	plain := "From: <news@bench.test>\r\nTo: <alice@example.test>\r\nSubject: bench\r\n" +
		"Date: Mon, 07 Dec 2026 11:00:00 +0000\r\nMessage-ID: <bench@bench.test>\r\n\r\n" +
		strings.Repeat(strings.Repeat("x", 62)+"\r\n", 2048/64-3)
	sign := func(k msgauth.Key) string {
		s := &msgauth.Signer{Keys: msgauth.StaticKeys{"bench.test": {k}}}
		sig, err := s.Sign(context.Background(), "bench.test", strings.NewReader(plain))
		if err != nil {
			b.Fatal(err)
		}
		return sig + plain
	}
	verification := func(cache bool) *smtpd.Verification {
		res := &mx.NetResolver{DNS: &mx.DNSResolver{Servers: []string{d.Addr}}}
		if cache {
			res.DNS.Cache = &mx.LookupCache{}
		}
		return &smtpd.Verification{
			Verifier:       &msgauth.Verifier{Resolver: res, AuthServID: "mx.example.test"},
			AuthServID:     "mx.example.test",
			DeferTempError: true,
		}
	}
	for _, tc := range []struct {
		name   string
		verify *smtpd.Verification
		msg    string
	}{
		{"off", nil, plain},
		{"unsigned", verification(true), plain},
		{"ed25519", verification(true), sign(edKey)},
		{"rsa2048", verification(true), sign(rsaKey)},
		{"rsa2048-nocache", verification(false), sign(rsaKey)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			addr, rcpts := start(b, smtpd.Config{Verify: tc.verify})
			smtpd.BenchInboundMessage(b, addr, 32, "bounce@bench.test", tc.msg, rcpts)
		})
	}
}
