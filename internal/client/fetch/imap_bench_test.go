package fetch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBenchIMAPFetch measures the download of 10,000 messages of 4 KB from Dovecot's imapd
// (implicit TLS, loopback) into a Maildir in mode keep, by petrel fetch and, if installed, by
// mbsync (isync) on the same folder. It is a measurement, not a test: run it with
//
//	PETREL_BENCH=1 go test -run TestBenchIMAPFetch -v ./internal/fetch
//
// PETREL_BENCH_N changes the number of messages. The first run against a new folder includes
// Dovecot building its index, so the folder is opened once before measuring.
func TestBenchIMAPFetch(t *testing.T) {
	if os.Getenv("PETREL_BENCH") == "" {
		t.Skip("set PETREL_BENCH=1 to run the IMAP fetch benchmark")
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("PETREL_BENCH_N")); err == nil {
		n = v
	}
	d := startIMAPDovecot(t)
	line := strings.Repeat("x", 76) + "\r\n"
	bodies := make([]string, n)
	for i := range bodies {
		hdr := fmt.Sprintf("From: a@example.net\r\nTo: carol@example.org\r\nSubject: bench %d\r\nMessage-ID: <%d@bench>\r\n\r\n", i, i)
		bodies[i] = hdr + strings.Repeat(line, (4096-len(hdr))/len(line))
	}
	d.DeliverAll(t, bodies)
	dir := t.TempDir()
	// Warm Dovecot's index with a dry run (EXAMINE and the listing only).
	fetch(t, imapAccount(t, d, d.IMAPSAddr, filepath.Join(dir, "warm"), "mode = \"keep\""), Options{DryRun: true})

	a := imapAccount(t, d, d.IMAPSAddr, filepath.Join(dir, "petrel"), "mode = \"keep\"")
	cpu0, start := cpuTime(), time.Now()
	res := fetch(t, a, Options{})
	wall, cpu := time.Since(start), cpuTime()-cpu0
	t.Logf("petrel fetch (IMAP): %d messages, %d bytes in %v: %.0f msg/s, %.1f MB/s, client CPU %v (%.0f µs/msg)",
		res.Downloaded, res.Bytes, wall, float64(res.Downloaded)/wall.Seconds(), float64(res.Bytes)/wall.Seconds()/1e6,
		cpu, float64(cpu.Microseconds())/float64(max(res.Downloaded, 1)))
	if res.Downloaded != n {
		t.Fatalf("downloaded %d", res.Downloaded)
	}

	if _, err := exec.LookPath("mbsync"); err != nil {
		t.Skip("mbsync (isync) not installed: no comparison")
	}
	md := filepath.Join(dir, "mbsync")
	port := d.IMAPSAddr[strings.LastIndex(d.IMAPSAddr, ":")+1:]
	conf := fmt.Sprintf(`IMAPAccount bench
Host localhost
Port %s
User %s
PassCmd "echo %s"
TLSType IMAPS
CertificateFile %s

IMAPStore remote
Account bench

MaildirStore local
Path %s/
Inbox %s/INBOX

Channel bench
Far :remote:
Near :local:
Patterns INBOX
Sync Pull New
Create Near
SyncState *
`, port, d.User, d.Pass, d.CertFile, md, md)
	confFile := filepath.Join(dir, "mbsyncrc")
	os.WriteFile(confFile, []byte(conf), 0o600)
	start = time.Now()
	cmd := exec.Command("mbsync", "-c", confFile, "-q", "bench")
	out, err := cmd.CombinedOutput()
	wall = time.Since(start)
	if err != nil {
		t.Fatalf("mbsync: %v\n%s", err, out)
	}
	u := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	entries, _ := os.ReadDir(filepath.Join(md, "INBOX", "new"))
	t.Logf("mbsync:              %d messages in %v: %.0f msg/s, CPU %v", len(entries), wall, float64(len(entries))/wall.Seconds(), u)
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
