package msgauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
)

// fakeDNS is a Resolver whose records are plain maps. Names are compared lower-case without
// the final dot. A name in fail answers every query with a temporary error.
type fakeDNS struct {
	mu      sync.Mutex
	txt     map[string][]string
	ip      map[string][]string
	fail    map[string]bool
	lookups atomic.Int64
}

func newFakeDNS() *fakeDNS {
	return &fakeDNS{txt: map[string][]string{}, ip: map[string][]string{}, fail: map[string]bool{}}
}

func norm(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

func (f *fakeDNS) check(name string) (string, error) {
	f.lookups.Add(1)
	n := norm(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[n] {
		return n, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	return n, nil
}

func (f *fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	n, err := f.check(name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.txt[n]; ok {
		return t, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeDNS) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	n, err := f.check(host)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []net.IPAddr
	for _, s := range f.ip[n] {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	if out == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func (f *fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if _, err := f.check(name); err != nil {
		return nil, err
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeDNS) LookupAddr(_ context.Context, addr string) ([]string, error) {
	if _, err := f.check(addr); err != nil {
		return nil, err
	}
	return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
}

func (f *fakeDNS) setTXT(name string, txt ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txt[norm(name)] = txt
}

func (f *fakeDNS) setFail(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[norm(name)] = true
}

// publish puts k's record into the fake DNS the way a resolver returns it: the
// character-strings of SplitTXT joined again.
func (f *fakeDNS) publish(t testing.TB, k Key) {
	t.Helper()
	rec, err := k.Record()
	if err != nil {
		t.Fatal(err)
	}
	f.setTXT(k.RecordName(), strings.Join(SplitTXT(rec), ""))
}

// crlf turns a message written with LF line ends into the CRLF form of the wire.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

const plainMessage = `From: Alice <alice@example.org>
To: Bob <bob@example.net>
Subject: Lunch
Date: Mon, 07 Dec 2026 09:00:00 +0000
Message-ID: <lunch-1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Shall we meet at noon?
`

var (
	keysOnce sync.Once
	rsaKey   Key
	edKey    Key
)

// testKeys returns one RSA and one Ed25519 key for example.org, made once per test binary
// (RSA-2048 generation is slow under load).
func testKeys(t testing.TB) (Key, Key) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = GenerateKey("example.org", "r1", RSA, rand.Reader); err != nil {
			panic(err)
		}
		if edKey, err = GenerateKey("example.org", "e1", Ed25519, rand.Reader); err != nil {
			panic(err)
		}
	})
	return rsaKey, edKey
}

// world is a sender domain example.org with both keys published, SPF allowing 192.0.2.1
// and a DMARC policy of reject, and a verifier for mx.example.net.
func world(t testing.TB) (*fakeDNS, *Signer, *Verifier) {
	t.Helper()
	rk, ek := testKeys(t)
	dns := newFakeDNS()
	dns.publish(t, rk)
	dns.publish(t, ek)
	dns.setTXT("example.org", "v=spf1 ip4:192.0.2.1 -all")
	dns.setTXT("_dmarc.example.org", "v=DMARC1; p=reject; rua=mailto:dmarc@example.org")
	signer := &Signer{Keys: StaticKeys{"example.org": {rk, ek}}}
	verifier := &Verifier{Resolver: dns, AuthServID: "mx.example.net", Rand: func(int) int { return 0 }}
	return dns, signer, verifier
}

func sign(t testing.TB, s *Signer, domain, msg string) string {
	t.Helper()
	sig, err := s.Sign(context.Background(), domain, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return sig + msg
}

func verify(t testing.TB, v *Verifier, env Envelope, msg string) *Verdict {
	t.Helper()
	verdict, err := v.Verify(context.Background(), env, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return verdict
}

var goodEnv = Envelope{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "mail.example.org", MailFrom: "alice@example.org"}

// parseAR parses the verdict's Authentication-Results field with go-msgauth's parser and
// returns the authserv-id and the results by method.
func parseAR(t *testing.T, field string) (string, map[string][]authres.Result) {
	t.Helper()
	if !strings.HasPrefix(field, "Authentication-Results: ") || !strings.HasSuffix(field, "\r\n") {
		t.Fatalf("not a header field: %q", field)
	}
	for _, line := range strings.Split(strings.TrimSuffix(field, "\r\n"), "\r\n")[1:] {
		if !strings.HasPrefix(line, "\t") {
			t.Fatalf("continuation line not folded: %q", line)
		}
	}
	value := strings.TrimPrefix(strings.ReplaceAll(strings.TrimSuffix(field, "\r\n"), "\r\n\t", " "), "Authentication-Results: ")
	id, results, err := authres.Parse(value)
	if err != nil {
		t.Fatalf("parsing %q: %v", value, err)
	}
	byMethod := map[string][]authres.Result{}
	for _, r := range results {
		var m string
		switch r.(type) {
		case *authres.SPFResult:
			m = "spf"
		case *authres.DKIMResult:
			m = "dkim"
		case *authres.DMARCResult:
			m = "dmarc"
		default:
			m = fmt.Sprintf("%T", r)
		}
		byMethod[m] = append(byMethod[m], r)
	}
	return id, byMethod
}

// wantVerdict checks every DKIM result, the SPF and DMARC results and the disposition.
func wantVerdict(t *testing.T, v *Verdict, dkim, spf, dmarc Result, disp Disposition) {
	t.Helper()
	for _, d := range v.DKIM {
		if d.Result != dkim {
			t.Errorf("DKIM %+v, want %s", d, dkim)
		}
	}
	if v.SPF.Result != spf {
		t.Errorf("SPF %+v, want %s", v.SPF, spf)
	}
	if v.DMARC.Result != dmarc || v.Disposition() != disp {
		t.Errorf("DMARC %+v, want %s with disposition %s", v.DMARC, dmarc, disp)
	}
}

func TestSignAndVerifyBothAlgorithms(t *testing.T) {
	_, signer, verifier := world(t)
	signed := sign(t, signer, "example.org", crlf(plainMessage))
	if n := strings.Count(signed, "DKIM-Signature:"); n != 2 {
		t.Fatalf("%d signatures, want one RSA and one Ed25519:\n%s", n, signed)
	}
	for _, want := range []string{"a=rsa-sha256", "a=ed25519-sha256", "c=relaxed/relaxed", "d=example.org"} {
		if !strings.Contains(signed, want) {
			t.Errorf("signature lacks %s", want)
		}
	}
	if strings.Contains(signed, " l=") || strings.Contains(signed, " x=") {
		t.Errorf("signature has an l= or x= tag")
	}

	v := verify(t, verifier, goodEnv, signed)
	if len(v.DKIM) != 2 {
		t.Fatalf("DKIM results %+v", v.DKIM)
	}
	algs := map[string]bool{}
	for _, d := range v.DKIM {
		if d.Result != Pass || d.Domain != "example.org" {
			t.Errorf("DKIM %+v, want pass for example.org", d)
		}
		algs[d.Algorithm] = true
	}
	if !algs["rsa-sha256"] || !algs["ed25519-sha256"] {
		t.Errorf("algorithms %v", algs)
	}
	if v.SPF.Result != Pass || v.SPF.Domain != "example.org" || v.SPF.Identity != "mailfrom" {
		t.Errorf("SPF %+v", v.SPF)
	}
	if v.DMARC.Result != Pass || v.DMARC.From != "example.org" || v.Disposition() != Accept {
		t.Errorf("DMARC %+v", v.DMARC)
	}

	id, res := parseAR(t, v.AuthResults)
	if id != "mx.example.net" {
		t.Errorf("authserv-id %q", id)
	}
	if s := res["spf"][0].(*authres.SPFResult); s.Value != authres.ResultPass || s.From != "alice@example.org" {
		t.Errorf("spf in header: %+v", s)
	}
	if len(res["dkim"]) != 2 {
		t.Fatalf("dkim in header: %+v", res["dkim"])
	}
	for _, r := range res["dkim"] {
		if d := r.(*authres.DKIMResult); d.Value != authres.ResultPass || d.Domain != "example.org" {
			t.Errorf("dkim in header: %+v", d)
		}
	}
	if d := res["dmarc"][0].(*authres.DMARCResult); d.Value != authres.ResultPass || d.From != "example.org" {
		t.Errorf("dmarc in header: %+v", d)
	}
	for _, want := range []string{"header.s=r1", "header.s=e1", "header.a=rsa-sha256", "header.b="} {
		if !strings.Contains(v.AuthResults, want) {
			t.Errorf("header lacks %s:\n%s", want, v.AuthResults)
		}
	}
}

func TestSignOversignsAndCoversPresentFields(t *testing.T) {
	rk, _ := testKeys(t)
	s := &Signer{Keys: StaticKeys{"example.org": {rk}}}
	sig, err := s.Sign(context.Background(), "example.org", strings.NewReader(crlf(plainMessage)))
	if err != nil {
		t.Fatal(err)
	}
	h := strings.ReplaceAll(strings.ReplaceAll(sig, "\r\n", ""), " ", "")
	_, tags, _ := strings.Cut(h, ";h=")
	tags, _, _ = strings.Cut(tags, ";")
	count := map[string]int{}
	for _, k := range strings.Split(tags, ":") {
		count[strings.ToLower(k)]++
	}
	// Present once and oversigned: listed twice. Present and not oversigned: once.
	// Absent and oversigned: once (it may not be added later). Absent otherwise: not at all.
	for name, want := range map[string]int{"from": 2, "subject": 2, "to": 2, "date": 2, "message-id": 2,
		"content-type": 2, "mime-version": 2, "cc": 1, "reply-to": 1, "list-id": 0, "received": 0} {
		if count[name] != want {
			t.Errorf("h= lists %s %d times, want %d (h=%s)", name, count[name], want, tags)
		}
	}
}

func TestAddedFromBreaksSignature(t *testing.T) {
	_, signer, verifier := world(t)
	signed := sign(t, signer, "example.org", crlf(plainMessage))
	// An attacker replays the signed message with a second From on top.
	forged := "From: Mallory <ceo@example.org>\r\n" + signed
	v := verify(t, verifier, goodEnv, forged)
	for _, d := range v.DKIM {
		if d.Result == Pass {
			t.Errorf("signature still passes with an added From: %+v", d)
		}
	}
}

func TestTamperedBodyFails(t *testing.T) {
	_, signer, verifier := world(t)
	signed := sign(t, signer, "example.org", crlf(plainMessage))
	tampered := strings.Replace(signed, "noon", "midnight", 1)
	env := goodEnv
	env.RemoteIP = netip.MustParseAddr("198.51.100.7") // not in SPF either
	v := verify(t, verifier, env, tampered)
	wantVerdict(t, v, Fail, Fail, Fail, Reject)
	if !strings.Contains(v.AuthResults, "dmarc=fail") || !strings.Contains(v.AuthResults, "p=reject") {
		t.Errorf("header:\n%s", v.AuthResults)
	}
}

// The RFC examples, verified with their published keys: RFC 6376 appendix A.2 (rsa-sha256,
// simple/simple, with the key of appendix C; the signature as corrected by erratum 3192) and
// RFC 8463 appendix A.3 (one ed25519-sha256 and one rsa-sha256 signature, keys of A.2).
func TestRFCExamples(t *testing.T) {
	const rfc6376Key = "v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYt" +
		"IxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhi" +
		"tdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"
	dns := newFakeDNS()
	dns.setTXT("brisbane._domainkey.example.com", rfc6376Key)
	dns.setTXT("test._domainkey.football.example.com", "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"+
		"iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"+
		"DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"+
		"Ip3G+2kryOTIKT+l/K4w3QIDAQAB")
	dns.setTXT("brisbane._domainkey.football.example.com", "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	v := &Verifier{Resolver: dns, AuthServID: "mx.example.net"}
	env := Envelope{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "client1.football.example.com", MailFrom: "joe@football.example.com"}

	for file, want := range map[string][]string{
		"testdata/rfc6376-a2.eml": {"example.com/brisbane/rsa-sha256"},
		"testdata/rfc8463-a3.eml": {"football.example.com/brisbane/ed25519-sha256", "football.example.com/test/rsa-sha256"},
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		verdict := verify(t, v, env, crlf(string(data)))
		var got []string
		for _, d := range verdict.DKIM {
			if d.Result != Pass {
				t.Errorf("%s: %+v", file, d)
			}
			got = append(got, d.Domain+"/"+d.Selector+"/"+d.Algorithm)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: signatures %v, want %v", file, got, want)
		}
		// The examples' From is football.example.com, which publishes no DMARC policy.
		if verdict.DMARC.Result != None {
			t.Errorf("%s: DMARC %+v", file, verdict.DMARC)
		}
	}
}

func TestDNSFailuresAreTemperrorNeverPass(t *testing.T) {
	dns, signer, verifier := world(t)
	signed := sign(t, signer, "example.org", crlf(plainMessage))
	dns.setFail("r1._domainkey.example.org")
	dns.setFail("e1._domainkey.example.org")
	dns.setFail("example.org") // the SPF record
	v := verify(t, verifier, goodEnv, signed)
	wantVerdict(t, v, TempError, TempError, TempError, Accept)

	// The policy itself unreachable: temperror too.
	dns2, _, verifier2 := world(t)
	dns2.setFail("_dmarc.example.org")
	v = verify(t, verifier2, Envelope{RemoteIP: netip.MustParseAddr("198.51.100.7"), Helo: "x.test", MailFrom: "a@x.test"}, crlf(plainMessage))
	if v.DMARC.Result != TempError || v.Disposition() != Accept {
		t.Errorf("DMARC %+v with the policy unreachable", v.DMARC)
	}
}

// errResolver fails with an error that is not a *net.DNSError, as a broken resolver
// might; it must count as temporary.
type errResolver struct{ fakeDNS }

func (e *errResolver) LookupTXT(context.Context, string) ([]string, error) {
	return nil, fmt.Errorf("resolver exploded")
}

func TestUnknownResolverErrorIsTemporary(t *testing.T) {
	_, signer, _ := world(t)
	signed := sign(t, signer, "example.org", crlf(plainMessage))
	v := verify(t, &Verifier{Resolver: &errResolver{*newFakeDNS()}, AuthServID: "mx"}, goodEnv, signed)
	if v.SPF.Result != TempError || v.DKIM[0].Result != TempError || v.DMARC.Result != TempError {
		t.Errorf("SPF %s DKIM %s DMARC %s, want temperror everywhere", v.SPF.Result, v.DKIM[0].Result, v.DMARC.Result)
	}
}

func TestHugeAndBrokenKeyRecords(t *testing.T) {
	for name, record := range map[string]string{
		"huge":    "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 60000),
		"garbage": "v=DKIM1; k=rsa; p=!!!not base64!!!",
		"revoked": "v=DKIM1; k=rsa; p=",
		"wrong k": "v=DKIM1; k=ed25519; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP",
		"no tags": ";;;===;;",
	} {
		t.Run(name, func(t *testing.T) {
			dns, signer, verifier := world(t)
			rk, _ := testKeys(t)
			signer.Keys = StaticKeys{"example.org": {rk}}
			signed := sign(t, signer, "example.org", crlf(plainMessage))
			dns.setTXT(rk.RecordName(), record)
			env := goodEnv
			env.RemoteIP = netip.MustParseAddr("198.51.100.7")
			v := verify(t, verifier, env, signed)
			if len(v.DKIM) != 1 || v.DKIM[0].Result != PermError {
				t.Errorf("DKIM %+v, want permerror", v.DKIM)
			}
			if v.DMARC.Result != Fail || v.Disposition() != Reject {
				t.Errorf("DMARC %+v", v.DMARC)
			}
		})
	}
}

func TestBrokenSignatures(t *testing.T) {
	_, _, verifier := world(t)
	for name, sig := range map[string]string{
		"no tags":        "DKIM-Signature: garbage\r\n",
		"missing b":      "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=r1; h=From; bh=AAAA\r\n",
		"bad base64":     "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=r1; h=From; bh=%%%; b=%%%\r\n",
		"sha1":           "DKIM-Signature: v=1; a=rsa-sha1; d=example.org; s=r1; h=From; bh=AAAA; b=AAAA\r\n",
		"From not in h=": "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=r1; h=Subject; bh=AAAA; b=AAAA\r\n",
		"i= outside d=":  "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; i=a@evil.test; s=r1; h=From; bh=AAAA; b=AAAA\r\n",
		"l= tag":         "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=r1; l=1; h=From; bh=AAAA; b=AAAA\r\n",
		"dup tag":        "DKIM-Signature: v=1; v=1; a=rsa-sha256; d=example.org; s=r1; h=From; bh=AAAA; b=AAAA\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			v := verify(t, verifier, goodEnv, sig+crlf(plainMessage))
			if len(v.DKIM) != 1 || v.DKIM[0].Result == Pass {
				t.Errorf("DKIM %+v", v.DKIM)
			}
			// SPF still passes and aligns: DMARC passes on SPF alone.
			if v.DMARC.Result != Pass {
				t.Errorf("DMARC %+v", v.DMARC)
			}
			if _, _, err := authres.Parse(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSuffix(v.AuthResults, "\r\n"), "Authentication-Results: "), "\r\n\t", " ")); err != nil {
				t.Errorf("header does not parse: %v\n%s", err, v.AuthResults)
			}
		})
	}
}

func TestSignatureAndLookupBound(t *testing.T) {
	dns, signer, verifier := world(t)
	_, ek := testKeys(t)
	signer.Keys = StaticKeys{"example.org": {ek}}
	msg := crlf(plainMessage)
	var sigs strings.Builder
	for range 20 {
		sig, err := signer.Sign(context.Background(), "example.org", strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		sigs.WriteString(sig)
	}
	before := dns.lookups.Load()
	v := verify(t, verifier, Envelope{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "h.test"}, sigs.String()+msg)
	if len(v.DKIM) != DefaultMaxSignatures {
		t.Errorf("%d signatures verified, want the bound %d", len(v.DKIM), DefaultMaxSignatures)
	}
	// Key look-ups (one per verified signature), the SPF record of the HELO domain, and
	// at most two DMARC look-ups.
	if n := dns.lookups.Load() - before; n > int64(DefaultMaxSignatures)+1+2 {
		t.Errorf("%d DNS look-ups", n)
	}
}

func TestDMARCPolicies(t *testing.T) {
	unsigned := func(from string) string {
		return crlf(strings.Replace(plainMessage, "From: Alice <alice@example.org>", "From: "+from, 1))
	}
	attacker := Envelope{RemoteIP: netip.MustParseAddr("203.0.113.9"), Helo: "evil.test", MailFrom: "x@evil.test"}
	cases := []struct {
		name     string
		records  map[string]string
		from     string
		rand     int
		env      Envelope
		result   Result
		disp     Disposition
		recordAt string
	}{
		{"reject", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject"}, "a@example.org", 0, attacker, Fail, Reject, "example.org"},
		{"quarantine", map[string]string{"_dmarc.example.org": "v=DMARC1; p=quarantine"}, "a@example.org", 0, attacker, Fail, Quarantine, "example.org"},
		{"none", map[string]string{"_dmarc.example.org": "v=DMARC1; p=none"}, "a@example.org", 0, attacker, Fail, Accept, "example.org"},
		{"no record", nil, "a@example.org", 0, attacker, None, Accept, ""},
		{"sp for subdomain", map[string]string{"_dmarc.example.org": "v=DMARC1; p=none; sp=reject"}, "a@news.example.org", 0, attacker, Fail, Reject, "example.org"},
		{"p when sp absent", map[string]string{"_dmarc.example.org": "v=DMARC1; p=quarantine"}, "a@news.example.org", 0, attacker, Fail, Quarantine, "example.org"},
		{"subdomain's own record", map[string]string{"_dmarc.example.org": "v=DMARC1; p=none; sp=none", "_dmarc.news.example.org": "v=DMARC1; p=reject; sp=none"}, "a@news.example.org", 0, attacker, Fail, Reject, "news.example.org"},
		{"pct sampled in", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject; pct=50"}, "a@example.org", 49, attacker, Fail, Reject, "example.org"},
		{"pct sampled out: reject to quarantine", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject; pct=50"}, "a@example.org", 50, attacker, Fail, Quarantine, "example.org"},
		{"pct sampled out: quarantine to none", map[string]string{"_dmarc.example.org": "v=DMARC1; p=quarantine; pct=0"}, "a@example.org", 0, attacker, Fail, Accept, "example.org"},
		{"two records: no policy", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject\x00v=DMARC1; p=none"}, "a@example.org", 0, attacker, None, Accept, ""},
		{"keywords in capitals", map[string]string{"_dmarc.example.org": "V=DMARC1; P=Reject; ASPF=S"}, "a@example.org", 0, attacker, Fail, Reject, "example.org"},
		{"huge record", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject; rua=" + strings.Repeat("mailto:a@example.org,", 1000)}, "a@example.org", 0, attacker, PermError, Accept, ""},
		{"huge SPF record", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject", "example.org": "v=spf1 " + strings.Repeat("ip4:192.0.2.1 ", 2000) + "-all"}, "a@example.org", 0,
			Envelope{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "h.test", MailFrom: "a@example.org"}, Fail, Reject, "example.org"},
		{"broken record", map[string]string{"_dmarc.example.org": "v=DMARC1; p=sometimes"}, "a@example.org", 0, attacker, PermError, Accept, ""},
		{"other TXT ignored", map[string]string{"_dmarc.example.org": "google-site-verification=x\x00v=DMARC1; p=reject"}, "a@example.org", 0, attacker, Fail, Reject, "example.org"},
		{"SPF relaxed alignment", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject", "bounces.example.org": "v=spf1 ip4:203.0.113.9 -all"}, "a@example.org", 0,
			Envelope{RemoteIP: netip.MustParseAddr("203.0.113.9"), Helo: "h.test", MailFrom: "b@bounces.example.org"}, Pass, Accept, "example.org"},
		{"SPF strict alignment", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject; aspf=s", "bounces.example.org": "v=spf1 ip4:203.0.113.9 -all"}, "a@example.org", 0,
			Envelope{RemoteIP: netip.MustParseAddr("203.0.113.9"), Helo: "h.test", MailFrom: "b@bounces.example.org"}, Fail, Reject, "example.org"},
		{"SPF of another organization", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject", "example.org.evil.test": "v=spf1 ip4:203.0.113.9 -all"}, "a@example.org", 0,
			Envelope{RemoteIP: netip.MustParseAddr("203.0.113.9"), Helo: "h.test", MailFrom: "b@example.org.evil.test"}, Fail, Reject, "example.org"},
		{"null sender uses HELO", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject", "mx.example.org": "v=spf1 ip4:203.0.113.9 -all"}, "MAILER-DAEMON@example.org", 0,
			Envelope{RemoteIP: netip.MustParseAddr("203.0.113.9"), Helo: "mx.example.org"}, Pass, Accept, "example.org"},
		{"two From domains: strictest", map[string]string{"_dmarc.example.org": "v=DMARC1; p=reject", "evil.test": "v=spf1 ip4:203.0.113.9 -all"}, "x@evil.test, a@example.org", 0, attacker, Fail, Reject, "example.org"},
		{"public suffix co.uk", map[string]string{"_dmarc.example.co.uk": "v=DMARC1; p=reject"}, "a@shop.example.co.uk", 0, attacker, Fail, Reject, "example.co.uk"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dns := newFakeDNS()
			for name, rec := range tc.records {
				dns.setTXT(name, strings.Split(rec, "\x00")...)
			}
			dns.setTXT("evil.test", "v=spf1 ip4:203.0.113.9 -all")
			v := &Verifier{Resolver: dns, AuthServID: "mx.example.net", Rand: func(n int) int { return tc.rand }}
			got := verify(t, v, tc.env, unsigned(tc.from))
			if got.DMARC.Result != tc.result || got.Disposition() != tc.disp || got.DMARC.RecordDomain != tc.recordAt {
				t.Errorf("DMARC %+v (err %v), want %s/%s at %q", got.DMARC, got.DMARC.Err, tc.result, tc.disp, tc.recordAt)
			}
		})
	}
}

func TestDKIMAlignment(t *testing.T) {
	rk, _ := testKeys(t)
	signer := &Signer{Keys: StaticKeys{"example.org": {rk}}}
	msg := crlf(strings.Replace(plainMessage, "alice@example.org", "alice@news.example.org", 1))
	signed := sign(t, signer, "example.org", msg)
	attacker := Envelope{RemoteIP: netip.MustParseAddr("203.0.113.9"), Helo: "evil.test", MailFrom: "x@evil.test"}
	for policy, want := range map[string]Result{"v=DMARC1; p=reject": Pass, "v=DMARC1; p=reject; adkim=s": Fail} {
		dns := newFakeDNS()
		dns.publish(t, rk)
		dns.setTXT("_dmarc.example.org", policy)
		v := verify(t, &Verifier{Resolver: dns, AuthServID: "mx"}, attacker, signed)
		if v.DKIM[0].Result != Pass || v.DMARC.Result != want {
			t.Errorf("%s: DKIM %s, DMARC %+v, want %s", policy, v.DKIM[0].Result, v.DMARC, want)
		}
	}
}

func TestFromProblems(t *testing.T) {
	_, _, verifier := world(t)
	for name, msg := range map[string]string{
		"no From":    "Subject: x\r\n\r\nbody\r\n",
		"bad From":   "From: <<<@@@>>>\r\nSubject: x\r\n\r\nbody\r\n",
		"no domain":  "From: alice\r\nSubject: x\r\n\r\nbody\r\n",
		"empty From": "From: \r\n\r\nbody\r\n",
	} {
		v := verify(t, verifier, goodEnv, msg)
		if v.DMARC.Result != PermError || v.Disposition() != Accept {
			t.Errorf("%s: DMARC %+v", name, v.DMARC)
		}
	}
	// An RFC 2047 display name in an unknown charset does not hide the domain.
	v := verify(t, verifier, goodEnv, "From: =?x-unknown?q?Al=E9?= <alice@example.org>\r\n\r\nbody\r\n")
	if v.DMARC.From != "example.org" || v.DMARC.Result != Pass {
		t.Errorf("encoded display name: DMARC %+v", v.DMARC)
	}
}

func TestHeaderTooLarge(t *testing.T) {
	_, _, verifier := world(t)
	verifier.MaxHeaderBytes = 1000
	msg := "From: a@example.org\r\nX-Big: " + strings.Repeat("x", 2000) + "\r\n\r\nbody\r\n"
	_, err := verifier.Verify(context.Background(), goodEnv, strings.NewReader(msg))
	if err == nil || !strings.Contains(err.Error(), ErrHeaderTooLarge.Error()) {
		t.Errorf("err %v, want ErrHeaderTooLarge", err)
	}
}

func TestRemoveAuthResults(t *testing.T) {
	hdr := "Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=a@b\r\n" +
		"Received: from x\r\n" +
		"authentication-results: MX.EXAMPLE.NET;\r\n\tdkim=pass header.d=evil.test\r\n" +
		"Authentication-Results: (trust me) mx.example.net 1; dmarc=pass\r\n" +
		"Authentication-Results: \"mx.example.net\"; dmarc=pass\r\n" +
		"Authentication-Results: other.example.com; spf=fail\r\n" +
		"Authentication-Results: mx.example.net.evil.test; spf=pass\r\n" +
		"Subject: hi\r\n" +
		"\r\n"
	got := string(RemoveAuthResults([]byte(hdr), "mx.example.net"))
	want := "Received: from x\r\n" +
		"Authentication-Results: other.example.com; spf=fail\r\n" +
		"Authentication-Results: mx.example.net.evil.test; spf=pass\r\n" +
		"Subject: hi\r\n" +
		"\r\n"
	if got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
	// LF line ends and a header without a body survive as they were.
	lf := "Authentication-Results: mx.example.net; none\nSubject: x\n\n"
	if got := string(RemoveAuthResults([]byte(lf), "mx.example.net")); got != "Subject: x\n\n" {
		t.Errorf("LF: %q", got)
	}
	noBody := "Subject: x\r\nAuthentication-Results: mx.example.net; none\r\n"
	if got := string(RemoveAuthResults([]byte(noBody), "mx.example.net")); got != "Subject: x\r\n" {
		t.Errorf("no body: %q", got)
	}

	r, err := StripAuthResults(strings.NewReader(hdr+"Authentication-Results: mx.example.net; in the body\r\n"), "mx.example.net", 0)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(r)
	if b.String() != want+"Authentication-Results: mx.example.net; in the body\r\n" {
		t.Errorf("StripAuthResults: %q", b.String())
	}
}

func TestKeyRecords(t *testing.T) {
	rk, ek := testKeys(t)
	rec, err := rk.Record()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rec, "v=DKIM1; k=rsa; p=MIIB") {
		t.Errorf("RSA record %q", rec)
	}
	parts := SplitTXT(rec)
	if len(parts) < 2 || strings.Join(parts, "") != rec {
		t.Errorf("split into %d parts", len(parts))
	}
	for _, p := range parts {
		if len(p) > 255 {
			t.Errorf("string of %d bytes", len(p))
		}
	}
	zone := ZoneTXT(rk.RecordName(), rec)
	if !strings.HasPrefix(zone, `r1._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; p=`) || strings.Count(zone, `"`) != 2*len(parts) {
		t.Errorf("zone line %q", zone)
	}
	erec, err := ek.Record()
	if err != nil {
		t.Fatal(err)
	}
	// RFC 8463 §4.2: the 32-byte key, base64: 44 characters.
	if !strings.HasPrefix(erec, "v=DKIM1; k=ed25519; p=") || len(strings.TrimPrefix(erec, "v=DKIM1; k=ed25519; p=")) != 44 || len(SplitTXT(erec)) != 1 {
		t.Errorf("Ed25519 record %q", erec)
	}
	if got := DefaultSelector(Ed25519, mustTime(t, "2026-12-07T10:00:00Z")); got != "e20261207" {
		t.Errorf("selector %q", got)
	}
	for _, bad := range []string{"", "-a", "a..b", "a/b", "a b", "ä"} {
		if _, err := GenerateKey("example.org", bad, Ed25519, rand.Reader); err == nil {
			t.Errorf("selector %q accepted", bad)
		}
	}
}

func TestKeyPEMAndKeyDir(t *testing.T) {
	rk, ek := testKeys(t)
	dir := t.TempDir()
	kd := NewKeyDir(dir)
	for _, k := range []Key{rk, ek} {
		if err := kd.Add(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := kd.Add(rk); err == nil {
		t.Error("a second key with the same selector replaced the first")
	}
	info, err := os.Stat(dir + "/example.org/r1.pem")
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}
	keys, err := kd.SigningKeys(context.Background(), "Example.ORG")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Selector != "e1" || keys[1].Selector != "r1" || keys[0].Algorithm() != Ed25519 || keys[1].Algorithm() != RSA {
		t.Fatalf("keys %+v", keys)
	}
	// The keys read back sign messages that verify with the records of the originals.
	dns := newFakeDNS()
	dns.publish(t, rk)
	dns.publish(t, ek)
	dns.setTXT("_dmarc.example.org", "v=DMARC1; p=reject")
	signed := sign(t, &Signer{Keys: kd}, "example.org", crlf(plainMessage))
	v := verify(t, &Verifier{Resolver: dns, AuthServID: "mx"}, Envelope{RemoteIP: netip.MustParseAddr("203.0.113.9"), Helo: "h.test", MailFrom: "x@h.test"}, signed)
	if len(v.DKIM) != 2 || v.DKIM[0].Result != Pass || v.DKIM[1].Result != Pass || v.DMARC.Result != Pass {
		t.Errorf("verdict %+v", v)
	}
	if keys, err := kd.SigningKeys(context.Background(), "other.test"); err != nil || keys != nil {
		t.Errorf("domain without keys: %v %v", keys, err)
	}
	if _, err := kd.SigningKeys(context.Background(), "../etc"); err == nil {
		t.Error("a domain leaving the directory was accepted")
	}
	if _, err := ParseKey("example.org", "x", []byte("not pem")); err == nil {
		t.Error("garbage parsed as a key")
	}
	// A domain without keys does not sign.
	if sig, err := (&Signer{Keys: kd}).Sign(context.Background(), "other.test", strings.NewReader(plainMessage)); err != nil || sig != "" {
		t.Errorf("unsigned domain: %q %v", sig, err)
	}

	// A key added while the server runs signs once the domain's list is keyDirTTL old.
	now := time.Now()
	kd.now = func() time.Time { return now }
	if keys, _ := kd.SigningKeys(context.Background(), "example.org"); len(keys) != 2 {
		t.Fatalf("%d keys", len(keys))
	}
	added, err := GenerateKey("example.org", "e2", Ed25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := kd.Add(added); err != nil {
		t.Fatal(err)
	}
	if keys, _ := kd.SigningKeys(context.Background(), "example.org"); len(keys) != 2 {
		t.Errorf("%d keys within keyDirTTL of the last read, want the 2 read then", len(keys))
	}
	now = now.Add(keyDirTTL)
	if keys, _ := kd.SigningKeys(context.Background(), "example.org"); len(keys) != 3 || keys[1].Selector != "e2" {
		t.Errorf("after keyDirTTL: %+v, want the added key too", keys)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestMessageWithoutBody(t *testing.T) {
	_, signer, verifier := world(t)
	for _, msg := range []string{"From: a@example.org\r\nSubject: x\r\n", "From: a@example.org"} {
		signed := sign(t, signer, "example.org", msg)
		v := verify(t, verifier, goodEnv, signed)
		wantVerdict(t, v, Pass, Pass, Pass, Accept)
	}
}

func TestHostileValuesStayInsideTheHeaderField(t *testing.T) {
	_, _, verifier := world(t)
	sig := "DKIM-Signature: v=1; a=rsa-sha256\\; d=ex\"am\\ple.org\x01; s=se\\l\"; h=From; bh=AAAA; b=AA\\\r\n"
	v := verify(t, verifier, goodEnv, sig+crlf(plainMessage))
	if n := strings.Count(v.AuthResults, "\r\n"); n != 5 { // spf, dkim, dmarc, arc
		t.Errorf("%d lines, want 5:\n%s", n, v.AuthResults)
	}
	if strings.ContainsAny(v.AuthResults, "\\\x01") {
		t.Errorf("backslash or control character in %q", v.AuthResults)
	}
	if _, res := parseAR(t, v.AuthResults); len(res["dkim"]) != 1 || len(res["dmarc"]) != 1 {
		t.Errorf("results %v", res)
	}
}

// The records Records suggests, published as they are, make a signed message from the
// domain's MX host pass everything, and a forged one fail with quarantine.
func TestSuggestedRecords(t *testing.T) {
	rk, ek := testKeys(t)
	recs, err := Records("Example.ORG.", []Key{rk, ek})
	if err != nil {
		t.Fatal(err)
	}
	dns := newFakeDNS()
	for _, r := range recs {
		if !strings.HasPrefix(r.Zone(), r.Name+". IN TXT (") {
			t.Errorf("zone form %q", r.Zone())
		}
		dns.setTXT(r.Name, r.Text)
	}
	if len(recs) != 4 || recs[0].Name != "example.org" || recs[3].Name != "_dmarc.example.org" {
		t.Fatalf("records %+v", recs)
	}
	// "mx" in the SPF record: the fake resolver has no MX, so SPF does not pass here; DKIM
	// alone must carry DMARC.
	v := &Verifier{Resolver: dns, AuthServID: "mx"}
	signed := sign(t, &Signer{Keys: StaticKeys{"example.org": {rk, ek}}}, "example.org", crlf(plainMessage))
	got := verify(t, v, Envelope{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "mail.example.org", MailFrom: "alice@example.org"}, signed)
	wantVerdict(t, got, Pass, Fail, Pass, Accept)
	got = verify(t, v, Envelope{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "mail.example.org", MailFrom: "alice@example.org"}, crlf(plainMessage))
	wantVerdict(t, got, Pass, Fail, Fail, Quarantine)

	if _, err := Records("other.test", []Key{rk}); err == nil {
		t.Error("a key of another domain was accepted")
	}
}
