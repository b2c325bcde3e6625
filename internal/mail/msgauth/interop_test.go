package msgauth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Interop with two other DKIM implementations from Debian: dkimpy (python3-dkim) signs and
// verifies both ways with both algorithms; libopendkim (opendkim-tools) verifies Petrel's
// signatures, and its opendkim-testmsg's own signatures (always rsa-sha1) must be refused
// (RFC 8301 §3.1). Without the tools the tests skip locally and fail in CI, like every
// real-client test (README).

func needTool(t *testing.T, path string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (apt-get install opendkim-tools python3-dkim; see .ci/run)", path)
		}
		t.Skipf("%s is missing: apt-get install opendkim-tools python3-dkim", path)
	}
	return p
}

// dkimpy returns the command line prefix to run testdata/dkimpy.py with Debian's python3
// (not whatever python3 comes first in PATH, which may lack the package).
func dkimpy(t *testing.T) []string {
	t.Helper()
	py := needTool(t, "/usr/bin/python3")
	if err := exec.Command(py, "-c", "import dkim, nacl").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3-dkim is not installed (see .ci/run)")
		}
		t.Skip("python3-dkim is not installed: apt-get install python3-dkim")
	}
	script, err := filepath.Abs("testdata/dkimpy.py")
	if err != nil {
		t.Fatal(err)
	}
	return []string{py, script}
}

// run runs a command with stdin and returns its stdout; a non-zero exit is returned as an
// error with stderr.
func run(stdin string, args ...string) (string, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %v: %s%s", filepath.Base(args[len(args)-1]), err, errb.String(), out.String())
	}
	return out.String(), err
}

func TestDkimpySignsPetrelVerifies(t *testing.T) {
	py := dkimpy(t)
	rk, ek := testKeys(t)
	dir := t.TempDir()
	rsaFile, edFile := filepath.Join(dir, "rsa.pem"), filepath.Join(dir, "ed.key")
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk.Signer.(*rsa.PrivateKey))})
	if err := os.WriteFile(rsaFile, pkcs1, 0o600); err != nil {
		t.Fatal(err)
	}
	seed := base64.StdEncoding.EncodeToString(ek.Signer.(ed25519.PrivateKey).Seed())
	if err := os.WriteFile(edFile, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, verifier := world(t)
	msg := crlf(plainMessage)
	for _, tc := range []struct {
		key  Key
		file string
		alg  string
	}{{rk, rsaFile, "rsa"}, {ek, edFile, "ed25519"}} {
		sig, err := run(msg, append(py, "sign", tc.key.Selector, tc.key.Domain, tc.file, tc.alg)...)
		if err != nil {
			t.Fatal(err)
		}
		v := verify(t, verifier, Envelope{RemoteIP: netip.MustParseAddr("203.0.113.9"), Helo: "h.test", MailFrom: "x@h.test"}, sig+msg)
		if len(v.DKIM) != 1 || v.DKIM[0].Result != Pass || v.DKIM[0].Algorithm != tc.alg+"-sha256" || v.DMARC.Result != Pass {
			t.Errorf("dkimpy %s signature: %+v, DMARC %s\n%s", tc.alg, v.DKIM, v.DMARC.Result, sig)
		}
		v = verify(t, verifier, goodEnv, sig+strings.Replace(msg, "noon", "one", 1))
		if v.DKIM[0].Result != Fail {
			t.Errorf("dkimpy %s signature on a changed body: %+v", tc.alg, v.DKIM)
		}
	}
}

func TestPetrelSignsDkimpyVerifies(t *testing.T) {
	py := dkimpy(t)
	rk, ek := testKeys(t)
	records := keyRecords(t, rk, ek)
	data, _ := json.Marshal(records)
	recFile := filepath.Join(t.TempDir(), "records.json")
	if err := os.WriteFile(recFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	signer := &Signer{Keys: StaticKeys{"example.org": {rk, ek}}}
	// A message with folded fields, trailing white space and blank lines at the end: the
	// places where relaxed canonicalization differs between implementations.
	msg := crlf("From: Alice\n  <alice@example.org>\nTo: bob@example.net\nSubject:   Lunch\t \nDate: Mon, 07 Dec 2026 09:00:00 +0000\nMessage-ID: <x@example.org>\n\nShall  we meet \t\nat noon?\n\n\n")
	signed := sign(t, signer, "example.org", msg)
	out, err := run(signed, append(py, "verify", recFile)...)
	if err != nil || out != "pass\npass\n" {
		t.Errorf("dkimpy on Petrel's signatures: %q %v\n%s", out, err, signed)
	}
	if out, err := run(strings.Replace(signed, "noon", "one", 1), append(py, "verify", recFile)...); err == nil {
		t.Errorf("dkimpy passes a changed body: %q", out)
	}
}

// TestOpenDKIMSignsSHA1 checks that a signature from opendkim-testmsg, which always signs
// rsa-sha1, is read but refused: RFC 8301 §3.1 forbids verifying rsa-sha1.
func TestOpenDKIMSignsSHA1(t *testing.T) {
	testmsg := needTool(t, "opendkim-testmsg")
	rk, _ := testKeys(t)
	pemKey, err := rk.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(crlf(plainMessage), testmsg, "-C", "-d", "example.org", "-s", rk.Selector, "-k", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	_, _, verifier := world(t)
	v := verify(t, verifier, goodEnv, out)
	if len(v.DKIM) != 1 || !strings.Contains(v.DKIM[0].Algorithm, "sha1") || v.DKIM[0].Result != PermError {
		t.Errorf("opendkim's signature: %+v", v.DKIM)
	}
}

// TestOpenDKIMVerifiesPetrel gives libopendkim Petrel's signatures. opendkim-testmsg looks
// keys up through the system resolver, so the test serves them from a DNS server on a
// loopback address, port 53, and runs the tool in a private mount namespace whose
// /etc/resolv.conf points there: root only (the CI machine runs as root).
func TestOpenDKIMVerifiesPetrel(t *testing.T) {
	testmsg := needTool(t, "opendkim-testmsg")
	unshare := needTool(t, "unshare")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root for port 53 and a mount namespace")
		}
		t.Skip("needs root for port 53 and a mount namespace")
	}
	rk, ek := testKeys(t)
	records := keyRecords(t, rk, ek)
	addr := serveDNS(t, records)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+addr+"\noptions timeout:2 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	verifyWithOpenDKIM := func(msg string) error {
		_, err := run(msg, unshare, "-m", "sh", "-c", `mount --bind "$1" /etc/resolv.conf && exec "$2"`, "sh", resolv, testmsg)
		return err
	}
	msg := crlf(plainMessage)
	for _, k := range []Key{rk, ek} {
		signed := sign(t, &Signer{Keys: StaticKeys{"example.org": {k}}}, "example.org", msg)
		err := verifyWithOpenDKIM(signed)
		if k.Algorithm() == Ed25519 && err != nil && strings.Contains(err.Error(), "unsupported") {
			t.Logf("this libopendkim does not verify ed25519-sha256: %v", err)
			continue
		}
		if err != nil {
			t.Errorf("libopendkim refuses Petrel's %s signature: %v", k.Algorithm(), err)
		}
		if err := verifyWithOpenDKIM(strings.Replace(signed, "noon", "one", 1)); err == nil {
			t.Errorf("libopendkim passes a changed body (%s): the check cannot fail", k.Algorithm())
		}
	}
}

// keyRecords returns the DNS records of keys, by name.
func keyRecords(t *testing.T, keys ...Key) map[string]string {
	t.Helper()
	records := map[string]string{}
	for _, k := range keys {
		rec, err := k.Record()
		if err != nil {
			t.Fatal(err)
		}
		records[k.RecordName()] = rec
	}
	return records
}

// serveDNS answers TXT queries for records (by name, without final dot) on UDP port 53 of
// the first free address of 127.53.0.0/24, until the test ends, and returns the address.
func serveDNS(t *testing.T, records map[string]string) string {
	t.Helper()
	var pc net.PacketConn
	var addr string
	for i := 1; i < 255 && pc == nil; i++ {
		addr = fmt.Sprintf("127.53.0.%d", i)
		pc, _ = net.ListenPacket("udp", addr+":53")
	}
	if pc == nil {
		t.Fatal("no free loopback address for a DNS server on port 53")
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, err := dnsAnswer(buf[:n], records); err == nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	return addr
}

func dnsAnswer(query []byte, records map[string]string) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	rec, ok := records[name]
	rcode := dnsmessage.RCodeSuccess
	if !ok {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if ok && q.Type == dnsmessage.TypeTXT {
		err := b.TXTResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.TXTResource{TXT: SplitTXT(rec)})
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
