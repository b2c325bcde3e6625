package e2e

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashDurability kills the server with SIGKILL while eight clients deliver, restarts it
// on the same data and checks the promise behind every 250 after DATA: the message is there,
// exactly once. Messages that were sent but not acknowledged may or may not be there, but
// never twice.
func TestCrashDurability(t *testing.T) {
	t.Parallel()
	in := startInstance(t, nil)
	const user, pass = "crash@example.test", "crash-secret-1"
	in.addAccount(user, pass)

	const total, workers, killAfter = 2000, 8, 1000
	var (
		next    atomic.Int64 // next message number to send
		nacked  atomic.Int64
		killing atomic.Bool // set before the kill: connection errors are expected from then on
		acked   [total]atomic.Bool
		wg      sync.WaitGroup
	)
	errs := make(chan error, workers)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := crashWorker(in.SMTP, user, total, &next, acked[:], &nacked)
			if err != nil && !killing.Load() {
				errs <- err
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	reached := waitFor(60*time.Second, func() bool {
		select {
		case <-allDone:
			return true
		default:
			return nacked.Load() >= killAfter
		}
	})
	killing.Store(true)
	elapsed := time.Since(start)
	in.kill()
	<-allDone
	close(errs)
	for err := range errs {
		t.Errorf("client error before the kill: %v", err)
	}
	n := nacked.Load()
	if !reached {
		t.Fatalf("only %d messages acknowledged in 60s", n)
	}
	if n >= total {
		t.Fatalf("all %d messages were acknowledged before the kill; the test proved nothing", total)
	}
	t.Logf("killed after %d acknowledged messages (%.0f/s over %d connections)", n, float64(n)/elapsed.Seconds(), workers)

	in.start()
	msgs := mustFetchAll(t, in, user, pass, false)
	count := make([]int, total)
	for _, m := range msgs {
		tok := tokenOf(m)
		id, err := strconv.Atoi(strings.TrimPrefix(tok, "crash-"))
		if err != nil || id < 0 || id >= total {
			t.Errorf("unexpected message %q after the crash", tok)
			continue
		}
		count[id]++
		if count[id] == 1 {
			checkStored(t, tok, m, crashMessage(id, user))
		}
	}
	lost, dup, extra := 0, 0, 0
	for id, c := range count {
		switch {
		case c > 1:
			dup++
			t.Errorf("message %d stored %d times", id, c)
		case c == 0 && acked[id].Load():
			lost++
			if lost <= 10 {
				t.Errorf("message %d was acknowledged but is lost", id)
			}
		case c == 1 && !acked[id].Load():
			extra++
		}
	}
	t.Logf("after restart: %d messages, %d lost, %d duplicated, %d unacknowledged but kept", len(msgs), lost, dup, extra)

	// The store is writable again after recovery.
	mustDeliver(t, in, []string{user}, testMessage("after-crash", "sender@remote.example", user))
	if after := mustFetchAll(t, in, user, pass, false); len(after) != len(msgs)+1 {
		t.Errorf("after one more delivery: %d messages, want %d", len(after), len(msgs)+1)
	}
}

func crashMessage(id int, to string) []byte {
	return testMessage(fmt.Sprintf("crash-%04d", id), "load@remote.example", to)
}

// crashWorker delivers messages over one connection until total is reached or the
// connection fails, recording each message acknowledged with 250.
func crashWorker(addr, to string, total int, next *atomic.Int64, acked []atomic.Bool, nacked *atomic.Int64) error {
	s, greet, err := dialSMTP(addr)
	if err != nil {
		return err
	}
	defer s.Close()
	if greet.Code != 220 {
		return fmt.Errorf("greeting %v", greet)
	}
	if _, err := s.expect(250, "EHLO load.example"); err != nil {
		return err
	}
	for {
		id := int(next.Add(1) - 1)
		if id >= total {
			_, err := s.expect(221, "QUIT")
			return err
		}
		if _, err := s.expect(250, "MAIL FROM:<load@remote.example>"); err != nil {
			return err
		}
		if _, err := s.expect(250, "RCPT TO:<%s>", to); err != nil {
			return err
		}
		rp, err := s.data(crashMessage(id, to))
		if err != nil {
			return err
		}
		if rp.Code != 250 {
			return errors.New("message " + strconv.Itoa(id) + " refused: " + rp.String())
		}
		acked[id].Store(true)
		nacked.Add(1)
	}
}
