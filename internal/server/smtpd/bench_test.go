package smtpd

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkInbound measures the SMTP layer alone: 2 KB messages over 32 concurrent
// connections against a Deliverer that does no I/O. Each message is one pipelined
// MAIL/RCPT/DATA group (RFC 2920) and its body.
func BenchmarkInbound(b *testing.B) {
	benchInbound(b, startServer(b, Config{}, discardDeliverer()).addr, 32, 2048, []string{"alice@example.test"})
}

// BenchmarkInbound100K is the same with 100 KB bodies over 8 connections: the cost of
// reading DATA (line checks, dot-unstuffing, spooling) dominates.
func BenchmarkInbound100K(b *testing.B) {
	benchInbound(b, startServer(b, Config{}, discardDeliverer()).addr, 8, 100<<10, []string{"alice@example.test"})
}

func discardDeliverer() *fakeDeliverer {
	fd := newFakeDeliverer()
	fd.discard = true
	return fd
}

// benchInbound sends b.N messages of about size bytes to the server at addr over conns
// connections, one recipient each, taken from rcpts in turn. It reports msgs/s and the CPU
// time of the whole process (client and server) per message.
func benchInbound(b *testing.B, addr string, conns, size int, rcpts []string) {
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 62)+"\r\n", size/64)
	benchInboundMessage(b, addr, conns, "bench@elsewhere.example", body, rcpts)
}

// benchInboundMessage is benchInbound with a given sender and message (CRLF line ends, not
// dot-stuffed: no line may start with a dot).
func benchInboundMessage(b *testing.B, addr string, conns int, from, body string, rcpts []string) {
	body += ".\r\n"
	msgs := make([]string, len(rcpts))
	for i, r := range rcpts {
		msgs[i] = "MAIL FROM:<" + from + ">\r\nRCPT TO:<" + r + ">\r\nDATA\r\n"
	}

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	cpu := cpuTime()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", addr)
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
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				w.WriteString(msgs[int(i)%len(msgs)])
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
	cpuPerMsg := float64((cpuTime() - cpu).Microseconds()) / float64(b.N)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(cpuPerMsg, "cpu-µs/msg")
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
