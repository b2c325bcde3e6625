package msgauth

import (
	"context"
	"strings"
	"testing"

	"petrel/internal/mail/arc"
)

// TestARCInAuthResults: Verify validates an ARC chain beside DKIM and reports it as the
// arc method: pass for a sound chain (whether or not the message also has a DKIM
// signature, so whether or not DKIM reads the body), fail for a broken one, none without.
func TestARCInAuthResults(t *testing.T) {
	dns, signer, verifier := world(t)
	rk, _ := testKeys(t)
	dns.publish(t, rk) // the forwarder seals with the same key: r1._domainkey.example.org
	forward := func(msg string) string {
		i := strings.Index(msg, "\r\n\r\n") + 4
		hdr, body := msg[:i], msg[i:]
		s := &arc.Signer{Domain: "example.org", Selector: "r1", Key: rk.Signer}
		set, err := s.Seal([]byte(hdr), strings.NewReader(body), "mx.example.org", "spf=pass; arc=none", arc.Result{Status: arc.None})
		if err != nil || set == "" {
			t.Fatalf("seal: %q %v", set, err)
		}
		return set + msg
	}
	plain := crlf(plainMessage)
	for name, tc := range map[string]struct {
		msg  string
		want arc.Status
	}{
		"sealed, unsigned":    {forward(plain), arc.Pass},
		"sealed and signed":   {forward(sign(t, signer, "example.org", plain)), arc.Pass},
		"sealed, body edited": {strings.Replace(forward(plain), "\r\n\r\n", "\r\n\r\nedited ", 1), arc.Fail},
		"no ARC":              {plain, arc.None},
	} {
		v, err := verifier.Verify(context.Background(), goodEnv, strings.NewReader(tc.msg))
		if err != nil {
			t.Fatal(err)
		}
		if v.ARC.Status != tc.want {
			t.Errorf("%s: ARC %+v, want %s", name, v.ARC, tc.want)
		}
		if !strings.Contains(v.AuthResults, ";\r\n\tarc="+string(tc.want)) {
			t.Errorf("%s: header:\n%s", name, v.AuthResults)
		}
	}
}

// TestSealerForwardChain: a forwarder verifies a message, seals it with its verdict, and the
// next receiver finds a passing chain whose ARC-Authentication-Results carries the first
// verdict; a second forwarder extends it (cv=pass, i=2); a domain with only an Ed25519 key
// or none seals nothing, and neither does anyone after a failed chain.
func TestSealerForwardChain(t *testing.T) {
	_, signer, verifier := world(t)
	rk, ek := testKeys(t)
	ctx := context.Background()
	sealer := &Sealer{Keys: StaticKeys{"example.org": {ek, rk}, "ed.test": {ek}}, AuthServID: "mx.example.org"}

	hop := func(msg string) (string, *Verdict) {
		t.Helper()
		v := verify(t, verifier, goodEnv, msg)
		set, err := sealer.Seal(ctx, "example.org", strings.NewReader(msg), v.Results(), v.ARC)
		if err != nil || set == "" {
			t.Fatalf("seal: %q %v", set, err)
		}
		return set + msg, v
	}
	first, v1 := hop(sign(t, signer, "example.org", crlf(plainMessage)))
	if !strings.HasPrefix(v1.Results(), "spf=pass") || strings.Contains(v1.Results(), "mx.example.net") {
		t.Fatalf("Results() = %q", v1.Results())
	}
	if !strings.Contains(first, "ARC-Authentication-Results: i=1; mx.example.org;\r\n\tspf=pass") ||
		!strings.Contains(first, "ARC-Seal: i=1; a=rsa-sha256; cv=none") {
		t.Fatalf("first set:\n%s", first)
	}
	second, v2 := hop("Received: from mx.example.org by mx.example.net\r\n" + first)
	if v2.ARC.Status != arc.Pass || v2.ARC.Instances != 1 {
		t.Fatalf("chain after one forward: %+v", v2.ARC)
	}
	if !strings.Contains(second, "ARC-Seal: i=2; a=rsa-sha256; cv=pass") {
		t.Fatalf("second set:\n%s", second)
	}
	if v3 := verify(t, verifier, goodEnv, second); v3.ARC.Status != arc.Pass || v3.ARC.Instances != 2 {
		t.Fatalf("chain after two forwards: %+v", v3.ARC)
	}

	for name, tc := range map[string]struct {
		domain string
		chain  arc.Result
	}{
		"Ed25519 only": {"ed.test", arc.Result{Status: arc.None}},
		"no keys":      {"nokeys.test", arc.Result{Status: arc.None}},
		"failed chain": {"example.org", arc.Result{Status: arc.Fail, Instances: 1}},
	} {
		set, err := sealer.Seal(ctx, tc.domain, strings.NewReader(first), "spf=pass", tc.chain)
		if err != nil || set != "" {
			t.Errorf("%s: sealed %q, %v; want nothing", name, set, err)
		}
	}
}
