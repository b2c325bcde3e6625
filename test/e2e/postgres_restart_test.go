package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// TestPostgresRestartUnderLoad restarts PostgreSQL (a fast shutdown ends every session, as
// a failover does) while SMTP clients deliver to two nodes, and checks issue 12's promise:
// during the outage clients are told to come back later (4xx), never refused (5xx); after
// it the same processes serve again without a restart; and every message answered 250 is
// there exactly once.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	pg := mailtest.PostgresCluster(t) // a cluster of its own: the shared one must not restart
	opts := options{
		"store": {`backend = "postgres"`, fmt.Sprintf("dsn = %q", pg.DSN)},
		"pull":  {fmt.Sprintf("key_file = %q", filepath.Join(t.TempDir(), "pull.key"))}, // one per cluster
	}
	nodes := []*instance{startInstance(t, opts), startInstance(t, opts)}
	const user, pass = "restart@example.test", "restart-secret-1"
	nodes[0].addAccount(user, pass)

	const total = 20000
	var (
		next     atomic.Int64
		nacked   atomic.Int64
		deferred atomic.Int64 // 4xx replies and dropped connections
		stop     atomic.Bool
		acked    [total]atomic.Bool
		wg       sync.WaitGroup
	)
	errs := make(chan error, 4)
	for i := range 4 {
		addr := nodes[i%2].SMTP
		wg.Go(func() {
			if err := restartWorker(addr, user, total, &stop, &next, acked[:], &nacked, &deferred); err != nil {
				errs <- err
			}
		})
	}
	waitAcked := func(n int64, what string) {
		t.Helper()
		if !waitFor(180*time.Second, func() bool { return nacked.Load() >= n || next.Load() >= total }) {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("%s: %d messages acknowledged in all, want %d within 180s", what, nacked.Load(), n)
		}
		if next.Load() >= total {
			t.Fatalf("%s: all %d messages sent; the test proved nothing", what, total)
		}
	}
	waitAcked(100, "before the restart")
	if err := pg.Restart(); err != nil {
		t.Fatalf("restarting PostgreSQL: %v", err)
	}
	atRestart := nacked.Load()
	waitAcked(atRestart+100, "after the restart")
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, in := range nodes {
		if !in.running() {
			t.Fatalf("node %d exited", i)
		}
	}
	t.Logf("%d acknowledged (%d before the restart), %d deferred or dropped", nacked.Load(), atRestart, deferred.Load())
	for i, in := range nodes {
		if code, body := readiness(t, in); code != http.StatusOK {
			t.Errorf("node %d after the restart: /readyz %d %q, want 200", i, code, body)
		}
	}

	msgs := mustFetchAll(t, nodes[1], user, pass, false)
	count := map[int]int{}
	for _, m := range msgs {
		tok := tokenOf(m)
		id, err := strconv.Atoi(strings.TrimPrefix(tok, "crash-"))
		if err != nil || id < 0 || id >= total {
			t.Errorf("unexpected message %q", tok)
			continue
		}
		count[id]++
		if count[id] == 2 {
			t.Errorf("message %d stored twice", id)
		}
	}
	lost := 0
	for id := range total {
		if acked[id].Load() && count[id] == 0 {
			lost++
			if lost <= 10 {
				t.Errorf("message %d was acknowledged but is lost", id)
			}
		}
	}
}

// retryPause is how long a client waits after a temporary failure before the next message,
// as an MTA backs off (a pause between attempts, not a wait for an event).
const retryPause = 20 * time.Millisecond

// restartWorker delivers messages over one connection, reconnecting when the server drops
// it, until stop or total; it records each message answered 250 and counts 4xx replies.
// A 5xx reply is an error: an outage of the store is temporary.
func restartWorker(addr, to string, total int, stop *atomic.Bool, next *atomic.Int64, acked []atomic.Bool, nacked, deferred *atomic.Int64) error {
	var s *smtpConn
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	for !stop.Load() {
		if s == nil {
			c, greet, err := dialSMTP(addr)
			if err != nil {
				return fmt.Errorf("dial %s: %v", addr, err)
			}
			s = c
			if greet.Code != 220 {
				return fmt.Errorf("greeting %v", greet)
			}
			if _, err := s.expect(250, "EHLO load.example"); err != nil {
				return err
			}
		}
		id := int(next.Add(1) - 1)
		if id >= total {
			return nil
		}
		code, err := sendOne(s, id, to)
		switch {
		case err != nil && (errors.Is(err, io.EOF) || isNetErr(err)):
			deferred.Add(1) // the session ended on a store error: connect again
			s.Close()
			s = nil
			time.Sleep(retryPause)
		case err != nil:
			return err
		case code == 250:
			acked[id].Store(true)
			nacked.Add(1)
		case code >= 400 && code < 500:
			deferred.Add(1)
			if _, err := s.expect(250, "RSET"); err != nil {
				s.Close()
				s = nil
			}
			time.Sleep(retryPause)
		default:
			return fmt.Errorf("message %d: reply %d during a store restart, want 250 or 4xx", id, code)
		}
	}
	return nil
}

// sendOne sends message id and returns the reply code of the step that did not succeed,
// or 250 after the final dot.
func sendOne(s *smtpConn, id int, to string) (int, error) {
	for _, step := range []struct {
		cmd  string
		code int
	}{{"MAIL FROM:<load@remote.example>", 250}, {"RCPT TO:<" + to + ">", 250}, {"DATA", 354}} {
		rp, err := s.cmd("%s", step.cmd)
		if err != nil || rp.Code != step.code {
			return rp.Code, err
		}
	}
	rp, err := s.dataBody(crashMessage(id, to))
	return rp.Code, err
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || strings.Contains(err.Error(), "connection reset")
}

// readiness asks an instance's /readyz (the store answers, its schema is current, the
// listeners serve) and returns the status and body.
func readiness(t *testing.T, in *instance) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: ca.tlsConfig()}}
	resp, err := c.Get("https://" + in.HTTPS + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	return resp.StatusCode, string(b)
}
