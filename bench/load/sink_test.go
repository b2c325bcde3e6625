package load

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestSink: messages sent over several connections are all counted, with their
// bytes, and RunSink's wait ends with the last one.
func TestSink(t *testing.T) {
	s, err := StartSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const conns, each = 4, 5
	body := "Subject: sink\r\n\r\n" + strings.Repeat("x", 100) + "\r\n"
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(s.Addr())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for j := range each {
				if err := c.SendMail("a@relay.test", []string{fmt.Sprintf("r%d-%d@far.test", i, j)}, strings.NewReader(body)); err != nil {
					t.Error(err)
					return
				}
			}
			c.Quit()
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := s.WaitFor(ctx, conns*each)
	wg.Wait()
	if d.TimedOut || d.Seen != conns*each || d.Expected != conns*each {
		t.Fatalf("delivery %+v", d)
	}
	if d.ElapsedS <= 0 || d.PerSec <= 0 {
		t.Errorf("no rate: %+v", d)
	}
	msgs, bytes := s.Count()
	if msgs != conns*each || bytes != int64(conns*each*len(body)) {
		t.Errorf("counted %d messages, %d bytes; want %d, %d", msgs, bytes, conns*each, conns*each*len(body))
	}
}

// TestRunSinkTimeout: a wait that cannot be met ends at its timeout with an
// error counted, not a hang.
func TestRunSinkTimeout(t *testing.T) {
	res, err := RunSink(context.Background(), SinkConfig{Listen: "127.0.0.1:0", Expect: 3, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Delivery.TimedOut || res.Errors != 1 || res.Ops != 0 {
		t.Errorf("result %+v, delivery %+v", res, res.Delivery)
	}
	if _, err := RunSink(context.Background(), SinkConfig{Listen: "127.0.0.1:0"}); err == nil {
		t.Error("RunSink without an expected count succeeded")
	}
}
