package msgauth

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// FuzzVerify feeds hostile messages to the whole verification: it must neither crash nor
// hang, and a message the fuzzer made up never passes DKIM with our keys.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(crlf(plainMessage)))
	f.Add([]byte("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=r1; h=From; bh=AAAA; b=AAAA\r\nFrom: a@example.org\r\n\r\nx"))
	f.Add([]byte("From: a@example.org, b@evil.test\nFrom: =?utf-8?q?x?= <c@[1.2.3.4]>\n\n"))
	for _, file := range []string{"testdata/rfc6376-a2.eml", "testdata/rfc8463-a3.eml"} {
		if data, err := os.ReadFile(file); err == nil {
			f.Add([]byte(crlf(string(data))))
		}
	}
	dns, _, verifier := world(f)
	dns.setTXT("_dmarc.evil.test", "v=DMARC1; p=reject; sp=quarantine; pct=50; adkim=s; aspf=s")
	verifier.MaxHeaderBytes = 64 << 10
	env := Envelope{RemoteIP: netip.MustParseAddr("203.0.113.9"), Helo: "h.test", MailFrom: "x@evil.test"}
	f.Fuzz(func(t *testing.T, msg []byte) {
		v, err := verifier.Verify(context.Background(), env, bytes.NewReader(msg))
		if errors.Is(err, ErrHeaderTooLarge) {
			return
		}
		if err != nil {
			// Only an unreadable message is an error; this one is in memory.
			t.Fatalf("Verify: %v", err)
		}
		for _, d := range v.DKIM {
			if d.Result == Pass && d.Domain == "example.org" {
				t.Fatalf("a made-up message passes DKIM for example.org")
			}
		}
		if !strings.HasPrefix(v.AuthResults, "Authentication-Results: mx.example.net;") || strings.Count(v.AuthResults, "\n") != strings.Count(v.AuthResults, "\r\n\t")+1 {
			t.Fatalf("malformed header field %q", v.AuthResults)
		}
	})
}

// FuzzRemoveAuthResults: what is left never claims our authserv-id, and removal is
// idempotent and only ever removes.
func FuzzRemoveAuthResults(f *testing.F) {
	f.Add([]byte("Authentication-Results: mx.example.net; spf=pass\r\nSubject: x\r\n\r\n"))
	f.Add([]byte("authentication-results:(c (nested) \\) ) \"mx.example.net\" 1;\n\tdkim=pass\n\n"))
	f.Add([]byte(" continuation first\r\nno colon\r\n\r\n"))
	f.Fuzz(func(t *testing.T, hdr []byte) {
		out := RemoveAuthResults(hdr, "mx.example.net")
		if len(out) > len(hdr) {
			t.Fatalf("grew from %d to %d bytes", len(hdr), len(out))
		}
		for _, fl := range splitFields(out) {
			if strings.EqualFold(fl.name, "Authentication-Results") && strings.EqualFold(authservIDOf(fl.value()), "mx.example.net") {
				t.Fatalf("left %q", fl.raw)
			}
		}
		if again := RemoveAuthResults(out, "mx.example.net"); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q then %q", out, again)
		}
	})
}
