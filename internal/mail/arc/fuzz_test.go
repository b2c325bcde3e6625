package arc

import (
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzVerify: any header section and body give a result, never a panic, and a
// pass only for a chain whose every seal checked out (here: none can, since the
// zone has one key and the fuzzer cannot sign with it, except for the seeds).
func FuzzVerify(f *testing.F) {
	rk, _ := testKeys(f)
	z := zone{"arc._domainkey.one.test": record(f, rk)}
	s := &Signer{Domain: "one.test", Selector: "arc", Key: rk, Now: func() time.Time { return time.Unix(1796662800, 0) }}
	hdr, body := split(message)
	set, err := s.Seal(hdr, strings.NewReader(body), "mx.one.test", "arc=none", Result{Status: None})
	if err != nil {
		f.Fatal(err)
	}
	sealed := set + message
	f.Add(sealed)
	f.Add(message)
	f.Add("ARC-Seal: i=1\r\nARC-Message-Signature: i=1\r\nARC-Authentication-Results: i=1\r\n\r\n")
	f.Add("ARC-Seal: i=51; cv=none\r\n\r\nbody")
	f.Add("ARC-Authentication-Results: i=x\r\n\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		i := strings.Index(msg, "\r\n\r\n")
		hdr, body := msg, ""
		if i >= 0 {
			hdr, body = msg[:i+4], msg[i+4:]
		}
		res, err := Verify(context.Background(), []byte(hdr), strings.NewReader(body), z.lookup)
		if err != nil {
			t.Fatal(err) // a strings.Reader never fails
		}
		switch res.Status {
		case None:
			if res.Instances != 0 {
				t.Errorf("none with %d sets", res.Instances)
			}
		case Pass:
			if res.Instances < 1 || res.Instances > MaxInstances {
				t.Errorf("pass with %d sets", res.Instances)
			}
		case Fail:
			if res.Err == nil {
				t.Error("fail without a reason")
			}
		default:
			t.Errorf("status %q", res.Status)
		}
	})
}
