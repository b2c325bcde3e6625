package arc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	edKey    ed25519.PrivateKey
)

func testKeys(t testing.TB) (*rsa.PrivateKey, ed25519.PrivateKey) {
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return rsaKey, edKey
}

// record is the DKIM key record of a key.
func record(t testing.TB, key crypto.Signer) string {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PrivateKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
	}
	t.Fatalf("key %T", key)
	return ""
}

// zone is a LookupTXT over a map; an absent name is NXDOMAIN.
type zone map[string]string

func (z zone) lookup(_ context.Context, name string) ([]string, error) {
	if r, ok := z[name]; ok {
		return []string{r}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

const message = "From: Alice <alice@origin.test>\r\nTo: list@forwarder.test\r\nSubject: ARC  test\r\n" +
	"Date: Mon, 07 Dec 2026 17:00:00 +0000\r\nMessage-ID: <arc-1@origin.test>\r\n\r\n" +
	"Hello,  world.\r\n\r\nA second\tparagraph.\r\n\r\n\r\n"

// seal adds a set to msg as a handler of domain would: verify, then seal.
func seal(t *testing.T, z zone, msg, domain, selector string, key crypto.Signer) string {
	t.Helper()
	hdr, body := split(msg)
	res, err := Verify(context.Background(), hdr, strings.NewReader(body), z.lookup)
	if err != nil {
		t.Fatal(err)
	}
	s := &Signer{Domain: domain, Selector: selector, Key: key, Now: func() time.Time { return time.Unix(1796662800, 0) }}
	set, err := s.Seal(hdr, strings.NewReader(body), "mx."+domain, "spf=pass smtp.mailfrom=origin.test; arc="+string(res.Status), res)
	if err != nil {
		t.Fatal(err)
	}
	if set == "" {
		t.Fatalf("no set added to a %s chain", res.Status)
	}
	z[selector+"._domainkey."+domain] = record(t, key)
	return set + msg
}

func split(msg string) ([]byte, string) {
	i := strings.Index(msg, "\r\n\r\n")
	return []byte(msg[:i+4]), msg[i+4:]
}

func verify(t *testing.T, z zone, msg string) Result {
	t.Helper()
	hdr, body := split(msg)
	res, err := Verify(context.Background(), hdr, strings.NewReader(body), z.lookup)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestChain(t *testing.T) {
	rk, ek := testKeys(t)
	z := zone{}
	if res := verify(t, z, message); res.Status != None || res.Instances != 0 {
		t.Fatalf("unsealed message: %+v", res)
	}
	msg := message
	for i, k := range []crypto.Signer{rk, ek, rk} {
		domain := []string{"one.test", "two.test", "three.test"}[i]
		msg = seal(t, z, msg, domain, "arc", k)
		if res := verify(t, z, msg); res.Status != Pass || res.Instances != i+1 {
			t.Fatalf("after %d sets: %+v\n%s", i+1, res, msg)
		}
	}
	if !strings.Contains(msg, "cv=none") || strings.Count(msg, "cv=pass") != 2 {
		t.Errorf("cv tags:\n%s", msg)
	}

	// What a later handler may change without breaking the newest AMS: a field
	// added on top (a Received). What it may not: the body, a signed field,
	// an earlier set.
	if res := verify(t, z, "Received: from x by y; Mon, 07 Dec 2026 17:00:00 +0000\r\n"+msg); res.Status != Pass {
		t.Errorf("a Received added: %+v", res)
	}
	for name, bad := range map[string]string{
		"body":           strings.Replace(msg, "Hello,", "Hullo,", 1),
		"subject":        strings.Replace(msg, "Subject: ARC  test", "Subject: ARC test!", 1),
		"older AAR":      strings.Replace(msg, "i=1; mx.one.test", "i=1; mx.evil.test", 1),
		"a set removed":  dropSet(msg, 2),
		"cv changed":     strings.Replace(msg, "cv=none", "cv=pass", 1),
		"key revoked":    msg,
		"duplicate seal": "ARC-Seal: i=2; a=rsa-sha256; cv=pass; d=x.test; s=a; b=AAAA\r\n" + msg,
	} {
		z := zone(copyMap(z))
		if name == "key revoked" {
			z["arc._domainkey.two.test"] = "v=DKIM1; p="
		}
		if res := verify(t, z, bad); res.Status != Fail || res.Err == nil {
			t.Errorf("%s: %+v", name, res)
		}
	}
	// Whitespace a relay may refold does not matter to relaxed canonicalization.
	if res := verify(t, z, strings.Replace(msg, "Subject: ARC  test", "Subject:   ARC\r\n  test", 1)); res.Status != Pass {
		t.Errorf("refolded Subject: %+v", res)
	}
}

func copyMap(z zone) map[string]string {
	m := map[string]string{}
	for k, v := range z {
		m[k] = v
	}
	return m
}

// dropSet removes the fields of instance i.
func dropSet(msg string, i int) string {
	hdr, body := split(msg)
	var out strings.Builder
	for _, f := range splitHeader(hdr) {
		if n := strings.ToLower(f.name); (n == aarName || n == amsName || n == asName) && instanceOf(f.name, f.value()) == i {
			continue
		}
		out.WriteString(f.raw)
	}
	return out.String() + "\r\n" + body
}

// A failed chain is not extended, nor one at the limit.
func TestSealRefuses(t *testing.T) {
	rk, _ := testKeys(t)
	s := &Signer{Domain: "x.test", Selector: "a", Key: rk}
	hdr, body := split(message)
	for _, chain := range []Result{{Status: Fail, Instances: 1}, {Status: Pass, Instances: MaxInstances}} {
		if set, err := s.Seal(hdr, strings.NewReader(body), "mx.x.test", "arc=fail", chain); err != nil || set != "" {
			t.Errorf("%+v: %q %v", chain, set, err)
		}
	}
}

func TestBodyCanonicalization(t *testing.T) {
	for _, tc := range []struct{ in, simple, relaxed string }{
		{"", "\r\n", ""},
		{"\r\n\r\n", "\r\n", ""},
		{"a  b \t\r\n\r\n", "a  b \t\r\n", "a b\r\n"},
		{" C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n", " C\r\nD E\r\n"},
		{"x", "x\r\n", "x\r\n"},
		{"x\n\ny\n", "x\r\n\r\ny\r\n", "x\r\n\r\ny\r\n"},
		{" \r\n", " \r\n", ""},
	} {
		for _, relaxed := range []bool{false, true} {
			var got bytes.Buffer
			h := &recorder{&got}
			if err := hashBody(h, strings.NewReader(tc.in), relaxed); err != nil {
				t.Fatal(err)
			}
			want := tc.simple
			if relaxed {
				want = tc.relaxed
			}
			if got.String() != want {
				t.Errorf("hashBody(%q, relaxed=%v) = %q, want %q", tc.in, relaxed, got.String(), want)
			}
		}
	}
}

// recorder is a hash.Hash that keeps what it was given.
type recorder struct{ b *bytes.Buffer }

func (r *recorder) Write(p []byte) (int, error) { return r.b.Write(p) }
func (r *recorder) Sum(b []byte) []byte         { return append(b, r.b.Bytes()...) }
func (r *recorder) Reset()                      { r.b.Reset() }
func (r *recorder) Size() int                   { return 0 }
func (r *recorder) BlockSize() int              { return 1 }

func TestWithoutB(t *testing.T) {
	for in, want := range map[string]string{
		"ARC-Seal: i=1; b=abc; d=x":              "ARC-Seal: i=1; b=; d=x",
		"ARC-Seal: i=1; s=ab=c; b=\r\n\t xy\r\n": "ARC-Seal: i=1; s=ab=c; b=\r\n",
		"ARC-Seal: bh=q; b = z":                  "ARC-Seal: bh=q; b =",
		"X: nothing":                             "X: nothing",
	} {
		if got := withoutB(in); got != want {
			t.Errorf("withoutB(%q) = %q, want %q", in, got, want)
		}
	}
}
