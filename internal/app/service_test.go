package app

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitFile: the unit in the repository is the one quickstart writes for the installed
// paths. PETREL_WRITE_UNIT=1 rewrites it.
func TestUnitFile(t *testing.T) {
	path := filepath.Join("..", "..", "dist", "systemd", "petrel.service")
	want := SystemdUnit(InstalledBinary, InstalledConfig, InstalledData)
	if os.Getenv("PETREL_WRITE_UNIT") != "" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != want {
		t.Errorf("%s differs from SystemdUnit (%v); rewrite it with PETREL_WRITE_UNIT=1 go test -run TestUnitFile ./internal/app", path, err)
	}
}

// TestUnitVerify: systemd-analyze verify accepts the unit without a single remark.
func TestUnitVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze (Debian package systemd) is required in CI")
		}
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	// verify checks that ExecStart names an executable: this test binary stands in.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(dir, "petrel.service")
	if err := os.WriteFile(unit, []byte(SystemdUnit(self, InstalledConfig, InstalledData)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check is real: a misspelt key is reported.
	bad := strings.Replace(SystemdUnit(self, InstalledConfig, InstalledData), "ProtectHome=yes", "ProtectHomes=yes", 1)
	os.WriteFile(unit, []byte(bad), 0o644)
	if out, _ := exec.Command(analyze, "verify", unit).CombinedOutput(); !strings.Contains(string(out), "ProtectHomes") {
		t.Errorf("systemd-analyze verify did not report a misspelt key:\n%s", out)
	}
}
