package pop3d

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleTLSMemory checks what an idle POP3-over-TLS connection costs the server (heap and
// goroutine stack, after a handshake, the greeting and a CAPA) against a generous bound: about
// 10 KB measured, so a failure means something large came back, not noise. The precise figure
// is BenchmarkIdleTLSMemory's.
func TestIdleTLSMemory(t *testing.T) {
	const conns = 200
	const budget = 32 << 10
	m := measureIdleTLS(t, conns)
	t.Logf("idle TLS session: %d bytes (heap %d + stack %d) each, over %d sessions", m.heap+m.stack, m.heap, m.stack, conns)
	if per := m.heap + m.stack; per > budget && !raceEnabled {
		t.Errorf("idle TLS session costs %d bytes, budget %d", per, budget)
	}
}

// BenchmarkIdleTLSMemory reports the heap and stack that an idle POP3-over-TLS session keeps,
// per connection, over 1,000 connections per round. The CPU figures are meaningless; run with
// -benchtime=1x (each round takes a second or two):
//
//	go test -run '^$' -bench IdleTLSMemory -benchtime 1x ./internal/pop3d
func BenchmarkIdleTLSMemory(b *testing.B) {
	const conns = 1000
	var heap, stack int64
	for range b.N {
		m := measureIdleTLS(b, conns)
		heap += m.heap
		stack += m.stack
	}
	n := int64(b.N)
	b.ReportMetric(float64(heap/n), "heap-B/conn")
	b.ReportMetric(float64(stack/n), "stack-B/conn")
	b.ReportMetric(float64((heap+stack)/n), "B/conn")
}

type idleMemory struct {
	heap, stack int64 // bytes per connection
}

// measureIdleTLS opens conns idle TLS connections to a fresh server and returns what each adds
// to the server's live heap and goroutine stacks, once every session has had the time to
// become idle (moveOnAfter). The clients run in a child process so their memory is not
// counted.
func measureIdleTLS(tb testing.TB, conns int) idleMemory {
	tb.Helper()
	e := newEnv(tb, Config{TLS: testTLSConfig(tb), ImplicitTLS: true})

	heap0, stack0 := liveMemory()
	child := exec.Command(os.Args[0], "-test.run=^TestIdleTLSMemoryClients$", "-test.count=1")
	child.Env = append(os.Environ(), "POP3D_MEMORY_CLIENTS="+e.addr+" "+strconv.Itoa(conns))
	child.Stderr = os.Stderr
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		tb.Fatal(err)
	}
	defer child.Wait()
	defer stdin.Close() // tells the child to hang up
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") || strings.HasPrefix(sc.Text(), "FAIL") {
				ready <- sc.Text()
			}
		}
		close(ready)
	}()
	select {
	case l := <-ready:
		if l != "ready" {
			tb.Fatalf("child: %q", l)
		}
	case <-time.After(60 * time.Second):
		tb.Fatal("clients not ready")
	}
	n := e.srv.conns.Sessions()
	if n != conns {
		tb.Fatalf("%d sessions, want %d", n, conns)
	}
	time.Sleep(3 * moveOnAfter)
	heap, stack := liveMemory()
	return idleMemory{heap: (heap - heap0) / int64(conns), stack: (stack - stack0) / int64(conns)}
}

// liveMemory returns the bytes of live heap and of goroutine stacks after collecting garbage
// (three times, so that pooled buffers are dropped and idle stacks shrink).
func liveMemory() (heap, stack int64) {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.StackInuse)
}

// TestIdleTLSMemoryClients is the child process of measureIdleTLS; it does nothing unless
// started by it.
func TestIdleTLSMemoryClients(t *testing.T) {
	spec := os.Getenv("POP3D_MEMORY_CLIENTS")
	if spec == "" {
		t.Skip("helper process for TestIdleTLSMemory")
	}
	addr, count, _ := strings.Cut(spec, " ")
	n, _ := strconv.Atoi(count)
	cfg := &tls.Config{InsecureSkipVerify: true}
	var conns []*tls.Conn
	for range n {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			fmt.Println("FAIL", err)
			return
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		io.WriteString(c, "CAPA\r\n")
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				fmt.Println("FAIL", err)
				return
			}
			if l == ".\r\n" {
				break
			}
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}
