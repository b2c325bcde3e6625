package arc

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Interop with dkimpy (Debian's python3-dkim, the implementation behind the ARC test
// suite): it seals after us and verifies our chains; we verify its seals and extend
// them. Without it the tests skip locally and fail in CI, like every real-client test.

func dkimpy(t *testing.T) []string {
	t.Helper()
	const py = "/usr/bin/python3" // Debian's, not whatever python3 comes first in PATH
	if err := exec.Command(py, "-c", "import dkim, authres").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3-dkim or python3-authres is not installed (see .ci/run)")
		}
		t.Skip("dkimpy's ARC needs: apt-get install python3-dkim python3-authres")
	}
	script, err := filepath.Abs("testdata/arcpy.py")
	if err != nil {
		t.Fatal(err)
	}
	return []string{py, script}
}

func runPy(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\n%s", args[1:], err, errb.String())
	}
	return out.String()
}

// pySign has dkimpy add a set as a handler of domain with the RSA test key.
// dkimpy takes the chain status from the arc= result of the handler's own
// Authentication-Results, so the message gets one first, as a receiver writes it.
func pySign(t *testing.T, py []string, z zone, msg, domain, status string) string {
	t.Helper()
	rk, _ := testKeys(t)
	file := filepath.Join(t.TempDir(), "key.pem")
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)})
	if err := os.WriteFile(file, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	ar := "Authentication-Results: mx." + domain + "; spf=pass smtp.mailfrom=origin.test"
	if status != "none" {
		ar += "; arc=" + status
	}
	out := runPy(t, ar+"\r\n"+msg, append(py, "sign", file, domain, "py", "mx."+domain)...)
	z["py._domainkey."+domain] = record(t, rk)
	// dkimpy writes its set above the message it was given, our A-R field included:
	// a receiver would have removed that field (it is ours); it is not signed.
	return strings.Replace(out, ar+"\r\n", "", 1)
}

func pyVerify(t *testing.T, py []string, z zone, msg string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "records.json")
	b, _ := json.Marshal(z)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return runPy(t, msg, append(py, "verify", file)...)
}

func TestInteropDkimpy(t *testing.T) {
	py := dkimpy(t)
	rk, _ := testKeys(t)
	z := zone{}

	// dkimpy seals first; we verify and seal after it, twice; dkimpy verifies the
	// chain of three and seals a fourth, which we verify. RSA only: dkimpy's ARC
	// knows no ed25519-sha256 (which is why Petrel seals with a domain's RSA key).
	msg := pySign(t, py, z, message, "first.test", "none")
	if res := verify(t, z, msg); res.Status != Pass || res.Instances != 1 {
		t.Fatalf("dkimpy's set: %+v\n%s", res, msg)
	}
	msg = seal(t, z, msg, "second.test", "go", rk)
	msg = seal(t, z, msg, "third.test", "go", rk)
	if got := pyVerify(t, py, z, msg); !strings.HasPrefix(got, "pass") {
		t.Fatalf("dkimpy on our chain of 3: %s\n%s", got, msg)
	}
	msg = pySign(t, py, z, msg, "fourth.test", "pass")
	if res := verify(t, z, msg); res.Status != Pass || res.Instances != 4 {
		t.Fatalf("dkimpy's fourth set: %+v\n%s", res, msg)
	}

	// Both see the same failure: a body changed after the last seal.
	bad := strings.Replace(msg, "Hello,", "Hullo,", 1)
	if got := pyVerify(t, py, z, bad); !strings.HasPrefix(got, "fail") {
		t.Errorf("dkimpy on a changed body: %s", got)
	}
	if res := verify(t, z, bad); res.Status != Fail {
		t.Errorf("a changed body: %+v", res)
	}
}
