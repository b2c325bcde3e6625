package fetch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// TestBenchFetchVsMpop measures the download of 10,000 messages of 4 KB from Petrel's POP3
// server (implicit TLS, loopback) into a Maildir, by petrel fetch and by mpop on the same
// maildrop (both in keep mode, each with fsync of every message as it does by default).
// It is a measurement, not a test: run it with
//
//	PETREL_BENCH=1 go test -run TestBenchFetchVsMpop -v ./internal/fetch
//
// PETREL_BENCH_N changes the number of messages.
func TestBenchFetchVsMpop(t *testing.T) {
	if os.Getenv("PETREL_BENCH") == "" {
		t.Skip("set PETREL_BENCH=1 to run the fetch benchmark")
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("PETREL_BENCH_N")); err == nil {
		n = v
	}
	s := mailtest.Start(t)
	acct := s.AddAccount(t, "alice@example.org", password)
	line := strings.Repeat("x", 76) + "\r\n"
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				hdr := fmt.Sprintf("From: a@example.net\r\nTo: alice@example.org\r\nSubject: bench %d\r\nMessage-ID: <%d@bench>\r\n\r\n", i, i)
				body := hdr + strings.Repeat(line, (4096-len(hdr))/len(line))
				s.Deliver(t, acct, body)
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("delivered %d messages in %v", n, time.Since(start))

	dir := t.TempDir()
	a := (&env{srv: s}).tlsAccount(t, filepath.Join(dir, "petrel"), "mode = \"keep\"")
	start = time.Now()
	res := fetch(t, a, Options{})
	d := time.Since(start)
	t.Logf("petrel fetch: %d messages, %d bytes in %v: %.0f msg/s, %.1f MB/s", res.Downloaded, res.Bytes, d,
		float64(res.Downloaded)/d.Seconds(), float64(res.Bytes)/d.Seconds()/1e6)
	if res.Downloaded != n {
		t.Fatalf("downloaded %d", res.Downloaded)
	}

	if _, err := exec.LookPath("mpop"); err != nil {
		t.Skip("mpop not installed")
	}
	md := filepath.Join(dir, "mpop")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(md, sub), 0o700)
	}
	port := s.TLSAddr[strings.LastIndex(s.TLSAddr, ":")+1:]
	conf := fmt.Sprintf(`defaults
tls on
tls_starttls off
tls_trust_file %s
account bench
host localhost
port %s
user alice@example.org
auth scram-sha-256
passwordeval echo '%s'
delivery maildir %s
keep on
uidls_file %s
`, s.CertFile, port, password, md, filepath.Join(dir, "mpop-uidls"))
	confFile := filepath.Join(dir, "mpoprc")
	os.WriteFile(confFile, []byte(conf), 0o600)
	start = time.Now()
	out, err := exec.Command(mpopCmd()[0], append(mpopCmd()[1:], "-C", confFile, "-q", "bench")...).CombinedOutput()
	d = time.Since(start)
	if err != nil {
		t.Fatalf("mpop: %v\n%s", err, out)
	}
	entries, _ := os.ReadDir(filepath.Join(md, "new"))
	t.Logf("mpop:         %d messages in %v: %.0f msg/s", len(entries), d, float64(len(entries))/d.Seconds())
}

// mpopCmd is mpop, or PETREL_BENCH_MPOP split on spaces (e.g. "strace -f -o F mpop").
func mpopCmd() []string {
	if v := os.Getenv("PETREL_BENCH_MPOP"); v != "" {
		return strings.Fields(v)
	}
	return []string{"mpop"}
}
