package smtpd

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// recordConn is a net.Conn that records each Write and serves reads from in.
type recordConn struct {
	net.Conn // nil: methods not overridden here must not be called
	in       bytes.Buffer
	writes   []string
	deadline time.Time
}

func (r *recordConn) Read(b []byte) (int, error)      { return r.in.Read(b) }
func (r *recordConn) Close() error                    { return nil }
func (r *recordConn) SetReadDeadline(time.Time) error { return nil }
func (r *recordConn) SetWriteDeadline(t time.Time) error {
	r.deadline = t
	return nil
}

func (r *recordConn) Write(b []byte) (int, error) {
	r.writes = append(r.writes, string(b))
	return len(b), nil
}

// TestRepliesGrouped: replies are held until the server reads again, then sent in one write
// (RFC 2920); Close and an earlier write deadline send them too.
func TestRepliesGrouped(t *testing.T) {
	rc := &recordConn{}
	c := newConn(rc, &Server{conns: map[*conn]struct{}{}})
	now := time.Now()
	c.SetWriteDeadline(now.Add(time.Minute))
	c.Write([]byte("250 2.0.0 Roger, accepting mail from <a@b>\r\n"))
	c.SetWriteDeadline(now.Add(time.Minute + time.Second)) // go-smtp, before each reply
	c.Write([]byte("250 2.0.0 I'll make sure <c@d> gets this\r\n"))
	c.Write([]byte("354 Go ahead\r\n"))
	if len(rc.writes) != 0 {
		t.Fatalf("replies written before the server reads: %q", rc.writes)
	}
	rc.in.WriteString("body\r\n.\r\n")
	var buf [64]byte
	if n, err := c.Read(buf[:]); err != nil || string(buf[:n]) != "body\r\n.\r\n" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	want := []string{"250 2.0.0 Roger, accepting mail from <a@b>\r\n250 2.0.0 I'll make sure <c@d> gets this\r\n354 Go ahead\r\n"}
	if len(rc.writes) != 1 || rc.writes[0] != want[0] {
		t.Fatalf("writes = %q, want %q", rc.writes, want)
	}

	// crypto/tls ends with an alert and a deadline of now: what came before goes out first.
	c.Write([]byte("221 2.0.0 Bye\r\n"))
	c.SetWriteDeadline(now)
	if len(rc.writes) != 2 || rc.writes[1] != "221 2.0.0 Bye\r\n" {
		t.Fatalf("writes after an earlier deadline = %q", rc.writes)
	}
	c.Write([]byte("alert"))
	c.Close()
	if len(rc.writes) != 3 || rc.writes[2] != "alert" {
		t.Fatalf("writes after Close = %q", rc.writes)
	}

	// A long reply is not held whole.
	c = newConn(rc, &Server{conns: map[*conn]struct{}{}})
	c.Write(bytes.Repeat([]byte("x"), maxPending))
	if len(rc.writes) != 4 {
		t.Errorf("%d bytes held", maxPending)
	}
}

// TestBodyDeadline: a body's deadline grows by n/rate for n bytes and never runs more than
// the budget ahead, so a fast start cannot be spent on a long stall.
func TestBodyDeadline(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const rate, budget = 500, 5 * time.Minute
	dl := t0.Add(budget)
	// A byte every 4s earns 2ms each time: the deadline hardly moves and is reached.
	now := t0
	for now.Before(dl) {
		now = now.Add(4 * time.Second)
		dl = bodyDeadline(dl, now, 1, rate, budget)
	}
	if got := dl.Sub(t0); got > budget+time.Second {
		t.Errorf("dripping client got %v, want about %v", got, budget)
	}
	// 1 MB at once earns 2000s, but only the budget counts from now.
	if got := bodyDeadline(t0.Add(time.Minute), t0, 1<<20, rate, budget); !got.Equal(t0.Add(budget)) {
		t.Errorf("deadline after 1 MB = %v, want now + budget", got.Sub(t0))
	}
	// 250 bytes earn half a second.
	if got := bodyDeadline(t0.Add(time.Minute), t0, 250, rate, budget); !got.Equal(t0.Add(time.Minute + 500*time.Millisecond)) {
		t.Errorf("deadline after 250 bytes = %v, want 1m0.5s", got.Sub(t0))
	}
}
