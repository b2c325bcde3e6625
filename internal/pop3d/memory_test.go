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

// TestIdleTLSMemory measures what an idle POP3-over-TLS connection costs the server: heap and
// goroutine stack per connection, after a handshake, the greeting and a CAPA. The clients run
// in a child process so their memory is not counted.
func TestIdleTLSMemory(t *testing.T) {
	const conns = 200
	const budget = 48 << 10
	e := newEnv(t, Config{TLS: testTLSConfig(t), ImplicitTLS: true})

	before := liveMemory()
	child := exec.Command(os.Args[0], "-test.run=^TestIdleTLSMemoryClients$", "-test.count=1")
	child.Env = append(os.Environ(), "POP3D_MEMORY_CLIENTS="+e.addr+" "+strconv.Itoa(conns))
	child.Stderr = os.Stderr
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
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
			t.Fatalf("child: %q", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("clients not ready")
	}
	e.srv.mu.Lock()
	n := len(e.srv.sessions)
	e.srv.mu.Unlock()
	if n != conns {
		t.Fatalf("%d sessions, want %d", n, conns)
	}
	per := (liveMemory() - before) / conns
	t.Logf("idle TLS session: %d bytes (heap + stack) each, over %d sessions", per, conns)
	if per > budget && !raceEnabled {
		t.Errorf("idle TLS session costs %d bytes, budget %d", per, budget)
	}
}

// liveMemory returns the bytes of live heap and goroutine stacks after collecting garbage
// (twice, so that pooled buffers are dropped and idle stacks shrink).
func liveMemory() int64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc + ms.StackInuse)
}

// TestIdleTLSMemoryClients is the child process of TestIdleTLSMemory; it does nothing unless
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
		c.SetDeadline(time.Now().Add(10 * time.Second))
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
