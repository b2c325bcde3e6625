package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDebianPackage builds the package with dist/debian/build.sh and checks what it holds.
// Under CI (a throwaway machine) it also installs it with dpkg -i, sets up an instance with
// quickstart and starts the server as the unit does (the petrel user, CAP_NET_BIND_SERVICE
// only) on a port below 1024, then purges the package. Locally the install is left out:
// it would change the machine.
func TestDebianPackage(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dpkg-deb is required in CI")
		}
		t.Skip("dpkg-deb not installed")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	build := exec.Command("bash", filepath.Join(root, "dist", "debian", "build.sh"), "0.0.1~test", out)
	build.Env = append(os.Environ(), "PETREL_BIN="+petrelBin)
	b, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	deb := strings.TrimSpace(string(b))
	info, err := exec.Command("dpkg-deb", "--field", deb, "Package", "Version", "Depends").CombinedOutput()
	if err != nil || !strings.Contains(string(info), "Package: petrel") || !strings.Contains(string(info), "Version: 0.0.1~test") {
		t.Errorf("dpkg-deb --field: %v\n%s", err, info)
	}
	contents, err := exec.Command("dpkg-deb", "--contents", deb).CombinedOutput()
	if err != nil {
		t.Fatal(err, string(contents))
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^drwxr-xr-x root/root .* \./$`),
		regexp.MustCompile(`(?m)^-rwxr-xr-x root/root .* \./usr/bin/petrel$`),
		regexp.MustCompile(`(?m)^-rw-r--r-- root/root .* \./lib/systemd/system/petrel\.service$`),
		regexp.MustCompile(`(?m) \./usr/share/doc/petrel/examples/fail2ban/filter\.d/petrel\.conf$`),
	} {
		if !want.Match(contents) {
			t.Errorf("package contents lack %s:\n%s", want, contents)
		}
	}
	if os.Getenv("CI") == "" || os.Geteuid() != 0 {
		t.Log("not installing the package: only under CI as root (it adds a user and files)")
		return
	}

	run := func(name string, args ...string) string {
		t.Helper()
		b, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		return string(b)
	}
	// Like every Debian MTA (policy §11.6), the package conflicts with the others: only one
	// can own port 25. CI has Postfix installed as an interop peer, so the conflict is
	// overridden here; nothing of Postfix's is touched.
	run("dpkg", "--force-conflicts", "-i", deb)
	t.Cleanup(func() { exec.Command("dpkg", "--purge", "petrel").Run() })
	u, err := user.Lookup("petrel")
	if err != nil {
		t.Fatalf("no petrel user after install: %v", err)
	}
	fi, err := os.Stat("/var/lib/petrel")
	if err != nil || fi.Mode().Perm() != 0o750 || !fi.IsDir() {
		t.Errorf("/var/lib/petrel: %v %v", fi, err)
	} else if st := fi.Sys().(*syscall.Stat_t); st.Uid == 0 {
		t.Errorf("/var/lib/petrel belongs to root, want petrel")
	}
	conf := "/etc/petrel/petrel.toml"
	t.Cleanup(func() { os.RemoveAll("/etc/petrel"); os.RemoveAll("/var/lib/petrel") })
	// --no-acme: CI reaches no CA (the ACME set-up is tested in internal/cli and internal/app).
	run("/usr/bin/petrel", "-c", conf, "quickstart", "--unit", "-", "--no-acme", "admin@example.org")
	// The start as the unit does it, on loopback: SMTP on port 25 needs the capability.
	c, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(c), `"0.0.0.0:25"`, `"127.0.0.1:25"`)
	text = regexp.MustCompile(`"0\.0\.0\.0:\d+"`).ReplaceAllString(text, `"127.0.0.1:0"`)
	if err := os.WriteFile(conf, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	os.Chown(conf, 0, gid)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	serve := exec.CommandContext(ctx, "setpriv", "--reuid=petrel", "--regid=petrel", "--init-groups",
		"--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service", "--no-new-privs",
		"/usr/bin/petrel", "-c", conf, "serve")
	stdout, err := serve.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	serve.Stderr = serve.Stdout
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	listening := 0
	for sc.Scan() && listening < 7 {
		if strings.Contains(sc.Text(), "listening on") {
			listening++
		}
	}
	serve.Process.Signal(syscall.SIGTERM)
	go func() {
		for sc.Scan() {
		}
	}()
	if err := serve.Wait(); err != nil || listening < 7 {
		t.Errorf("serve as the petrel user: %v, %d listeners up", err, listening)
	}
}
