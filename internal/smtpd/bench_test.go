package smtpd

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkInbound measures the SMTP layer alone: 2 KB messages over 32 concurrent
// connections against a Deliverer that does no I/O. Each message is one pipelined
// MAIL/RCPT/DATA group (RFC 2920) and its body.
func BenchmarkInbound(b *testing.B) {
	const conns = 32
	fd := newFakeDeliverer()
	fd.discard = true
	ts := startServer(b, Config{}, fd)

	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 62)+"\r\n", 2048/64) + ".\r\n"
	msg := "MAIL FROM:<bench@elsewhere.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", ts.addr)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			r := bufio.NewReader(nc)
			w := bufio.NewWriter(nc)
			expect := func(code string) bool {
				for {
					line, err := r.ReadString('\n')
					if err != nil || !strings.HasPrefix(line, code) {
						errs <- &benchError{code, line, err}
						return false
					}
					if line[3] == ' ' {
						return true
					}
				}
			}
			if !expect("220") {
				return
			}
			w.WriteString("EHLO bench\r\n")
			w.Flush()
			if !expect("250") {
				return
			}
			for next.Add(1) <= int64(b.N) {
				w.WriteString(msg)
				w.Flush()
				if !expect("250") || !expect("250") || !expect("354") {
					return
				}
				w.WriteString(body)
				w.Flush()
				if !expect("250") {
					return
				}
			}
			w.WriteString("QUIT\r\n")
			w.Flush()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

type benchError struct {
	want, got string
	err       error
}

func (e *benchError) Error() string {
	return "want " + e.want + ", got " + strings.TrimSpace(e.got) + " " + errString(e.err)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
