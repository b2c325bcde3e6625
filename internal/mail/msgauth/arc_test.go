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
