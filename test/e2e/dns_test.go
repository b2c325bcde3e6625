package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"petrel/internal/mail/msgauth"
	"petrel/internal/mailtest"
)

// TestDNSRecordsVerify: `petrel domain add` makes the domain's DKIM keys, and the records
// `petrel dns` prints are the ones a receiver needs. They are served from a test DNS server
// exactly as printed (TXT strings joined as a resolver joins them), a message is signed with
// the keys on disk, and a verifier that knows nothing but that DNS server finds SPF, both
// DKIM signatures and DMARC passing; a changed body fails both signatures.
func TestDNSRecordsVerify(t *testing.T) {
	in := newInstance(t, nil)
	if out := in.mustPetrel("", "domain", "add", "example.org"); strings.Count(out, "created DKIM") != 2 {
		t.Fatalf("domain add made no key pair:\n%s", out)
	}
	out := in.mustPetrel("", "dns", "example.org")
	_, subsPort, _ := net.SplitHostPort(in.Submissions)
	_, popsPort, _ := net.SplitHostPort(in.POP3S)
	_, imapsPort, _ := net.SplitHostPort(in.IMAPS)
	_, httpsPort, _ := net.SplitHostPort(in.HTTPS)
	for _, want := range []string{
		"example.org. IN MX 10 mail.example.test.",
		"_submissions._tcp.example.org. IN SRV 0 1 " + subsPort + " mail.example.test.",
		"_imaps._tcp.example.org. IN SRV 0 1 " + imapsPort + " mail.example.test.",
		"_pop3s._tcp.example.org. IN SRV 20 1 " + popsPort + " mail.example.test.",
		"autoconfig.example.org. IN CNAME mail.example.test.",
		"_autodiscover._tcp.example.org. IN SRV 0 1 " + httpsPort + " mail.example.test.",
		"mta-sts.example.org. IN CNAME mail.example.test.",
		`_mta-sts.example.org. IN TXT ( "v=STSv1; id=`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("petrel dns lacks %q:\n%s", want, out)
		}
	}

	// The zone, from the printed lines only.
	zone := mailtest.Zone{
		MX:  map[string][]mailtest.MX{},
		A:   map[string][]string{"mail.example.test": {"127.0.0.1"}},
		TXT: map[string][]string{},
	}
	mxLine := regexp.MustCompile(`^(\S+)\. IN MX (\d+) (\S+)\.$`)
	for _, l := range strings.Split(out, "\n") {
		if m := mxLine.FindStringSubmatch(l); m != nil {
			var pref uint16
			fmt.Sscan(m[2], &pref)
			zone.MX[m[1]] = append(zone.MX[m[1]], mailtest.MX{Pref: pref, Host: m[3]})
		}
	}
	zone.TXT = printedTXT(out)
	dns := mailtest.StartDNS(t, zone)
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dns.Addr)
	}}

	ctx := context.Background()
	msg := "From: alice@example.org\r\nTo: bob@elsewhere.test\r\nSubject: records\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nsigned with the key on disk\r\n"
	signer := &msgauth.Signer{Keys: msgauth.NewKeyDir(filepath.Join(in.data, "dkim"))}
	sig, err := signer.Sign(ctx, "example.org", strings.NewReader(msg))
	if err != nil || strings.Count(sig, "DKIM-Signature:") != 2 {
		t.Fatalf("sign: %v\n%s", err, sig)
	}
	v := &msgauth.Verifier{Resolver: res, AuthServID: "mx.elsewhere.test"}
	env := msgauth.Envelope{RemoteIP: netip.MustParseAddr("127.0.0.1"), Helo: "mail.example.test", MailFrom: "alice@example.org"}

	verdict, err := v.Verify(ctx, env, strings.NewReader(sig+msg))
	if err != nil {
		t.Fatal(err)
	}
	if verdict.SPF.Result != msgauth.Pass || verdict.DMARC.Result != msgauth.Pass || len(verdict.DKIM) != 2 {
		t.Errorf("SPF %s, DMARC %s, %d DKIM results; want pass, pass, 2\n%s", verdict.SPF.Result, verdict.DMARC.Result, len(verdict.DKIM), verdict.AuthResults)
	}
	for _, d := range verdict.DKIM {
		if d.Result != msgauth.Pass {
			t.Errorf("DKIM %s (%s): %s, %v", d.Selector, d.Algorithm, d.Result, d.Err)
		}
	}

	tampered := strings.Replace(sig+msg, "signed with", "changed after", 1)
	if verdict, err = v.Verify(ctx, env, strings.NewReader(tampered)); err != nil {
		t.Fatal(err)
	}
	for _, d := range verdict.DKIM {
		if d.Result != msgauth.Fail {
			t.Errorf("changed body: DKIM %s %s, want fail", d.Selector, d.Result)
		}
	}
}

// printedTXT reads the TXT records `petrel dns` prints (zone-file lines, the text cut into
// quoted strings), joined again as a resolver joins them, by name.
func printedTXT(out string) map[string][]string {
	txtLine := regexp.MustCompile(`^(\S+)\. IN TXT \((.*)\)$`)
	quoted := regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	txt := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if m := txtLine.FindStringSubmatch(l); m != nil {
			var b strings.Builder
			for _, s := range quoted.FindAllStringSubmatch(m[2], -1) {
				b.WriteString(strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(s[1]))
			}
			txt[m[1]] = append(txt[m[1]], b.String())
		}
	}
	return txt
}
