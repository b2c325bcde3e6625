package pop3d

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/store"
)

// BenchmarkRETR measures RETR of 4 KB messages by 8 clients in parallel over loopback, each
// logged in to its own maildrop.
func BenchmarkRETR(b *testing.B) {
	const clients, perBox = 8, 64
	e := newEnv(b, Config{AllowPlaintextAuth: true})
	body := benchMessage(4096)
	for i := range clients {
		addr := fmt.Sprintf("bench%d@example.org", i)
		a := e.st.addAccount(addr, store.POP3Keep)
		e.au.passwords[addr] = "pw"
		for range perBox {
			e.st.deliver(a.ID, store.Inbox, body)
		}
	}
	conns := make([]*benchClient, clients)
	for i := range conns {
		conns[i] = dialBench(b, e.addr, fmt.Sprintf("bench%d@example.org", i))
	}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, c := range conns {
		n := b.N / clients
		if i < b.N%clients {
			n++
		}
		wg.Go(func() {
			for j := range n {
				if err := c.retr(j%perBox + 1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	for _, c := range conns {
		c.conn.Close()
	}
}

// benchMessage returns a message of exactly size bytes with 78-octet CRLF lines, some starting
// with a dot.
func benchMessage(size int) string {
	var sb strings.Builder
	sb.WriteString("From: a@example.org\r\nTo: b@example.org\r\nSubject: benchmark\r\n\r\n")
	for i := 0; sb.Len() < size-80; i++ {
		if i%10 == 0 {
			sb.WriteString(".")
		} else {
			sb.WriteString("x")
		}
		sb.WriteString(strings.Repeat("y", 75) + "\r\n")
	}
	sb.WriteString(strings.Repeat("z", size-sb.Len()-2) + "\r\n")
	return sb.String()
}

type benchClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialBench(b *testing.B, addr, user string) *benchClient {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchClient{conn: conn, r: bufio.NewReaderSize(conn, 32<<10)}
	fmt.Fprintf(conn, "USER %s\r\nPASS pw\r\n", user)
	for range 3 {
		if l, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			b.Fatalf("login: %q %v", l, err)
		}
	}
	return c
}

func (c *benchClient) retr(n int) error {
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "RETR %d\r\n", n); err != nil {
		return err
	}
	if l, err := c.r.ReadSlice('\n'); err != nil || l[0] != '+' {
		return fmt.Errorf("RETR: %q %v", l, err)
	}
	for {
		l, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if string(l) == ".\r\n" {
			return nil
		}
	}
}
