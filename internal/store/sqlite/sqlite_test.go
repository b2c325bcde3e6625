package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"petrel/internal/store"
	"petrel/internal/store/storetest"
)

func openPath(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openTemp(t testing.TB, opts Options) *Store {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "petrel.db"), opts)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t, Options{}) })
}

func TestConformanceReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store {
		return openPath(t, filepath.Join(dir, "petrel.db"), Options{})
	})
}

// setup adds example.org and one account.
func setup(t testing.TB, s *Store, address string) store.Account {
	t.Helper()
	ctx := context.Background()
	if err := s.AddDomain(ctx, "example.org"); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	a, err := s.AddAccount(ctx, address, store.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func message(body string, accountID int64) *store.Delivery {
	return &store.Delivery{
		Targets: []store.Target{{AccountID: accountID, Mailbox: store.Inbox}},
		Body:    strings.NewReader(body),
		Size:    int64(len(body)),
	}
}

func TestPragmas(t *testing.T) {
	s := openTemp(t, Options{})
	defer s.Close()
	ctx := context.Background()
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "0"} {
		var got string
		if err := s.wc.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("write connection: PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rdb.ExecContext(ctx, "INSERT INTO domains (name) VALUES ('x')"); err == nil {
		t.Error("read pool accepted a write")
	}
}

func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "petrel.db")
	openPath(t, path, Options{}).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(path, Options{})
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	a := setup(t, s, "a@example.org")
	d, err := s.Deliver(context.Background(), message("hello\r\n", a.ID))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openPath(t, path, Options{})
	defer s.Close()
	box, err := s.Mailbox(context.Background(), a.ID, store.Inbox)
	if err != nil || box.Messages != 1 || box.UIDNext != 2 || box.ID != d.Messages[0].MailboxID {
		t.Fatalf("after reopen: %+v, %v", box, err)
	}
	// The new account after reopen does not reuse UIDVALIDITY values.
	b := setup(t, s, "b@example.org")
	bbox, _ := s.Mailbox(context.Background(), b.ID, store.Inbox)
	if bbox.UIDValidity <= box.UIDValidity {
		t.Errorf("UIDVALIDITY went from %d to %d", box.UIDValidity, bbox.UIDValidity)
	}
}

// TestGroupCommit checks that concurrent writers share transactions, that MaxBatch=1
// gives each its own, and that a failing request in a batch fails alone.
func TestGroupCommit(t *testing.T) {
	const writers, each = 32, 6
	for _, tc := range []struct {
		maxBatch int
		grouped  bool
	}{{0, true}, {1, false}} {
		t.Run(fmt.Sprintf("MaxBatch=%d", tc.maxBatch), func(t *testing.T) {
			s := openTemp(t, Options{MaxBatch: tc.maxBatch})
			defer s.Close()
			a := setup(t, s, "a@example.org")
			start, startIndex := s.batches.Load(), s.indexWrites.Load()
			var wg sync.WaitGroup
			var mu sync.Mutex
			var good, bad int
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						id := a.ID
						if i%3 == 0 {
							id = a.ID + 1000 // no such account: this request fails
						}
						_, err := s.Deliver(context.Background(), message(fmt.Sprintf("%d-%d\r\n", w, i), id))
						mu.Lock()
						if err == nil {
							good++
						} else if errors.Is(err, store.ErrNotFound) {
							bad++
						} else {
							t.Errorf("Deliver: %v", err)
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			// The background indexer's writes are requests of their own (indexer.go); none is
			// in flight while its run lock is held.
			s.index.run.Lock()
			batches := s.batches.Load() - start - (s.indexWrites.Load() - startIndex)
			s.index.run.Unlock()
			t.Logf("%d deliveries in %d transactions", writers*each, batches)
			if wantBad := writers * ((each + 2) / 3); bad != wantBad || good != writers*each-wantBad {
				t.Errorf("%d delivered, %d failed; want %d failed", good, bad, wantBad)
			}
			box, _ := s.Mailbox(context.Background(), a.ID, store.Inbox)
			if box.Messages != good || int(box.UIDNext) != good+1 {
				t.Errorf("mailbox %+v after %d good deliveries", box, good)
			}
			if tc.grouped && batches >= writers*each/2 {
				t.Errorf("%d transactions for %d concurrent deliveries: no grouping", batches, writers*each)
			}
			if !tc.grouped && batches != writers*each {
				t.Errorf("%d transactions for %d deliveries with MaxBatch=1", batches, writers*each)
			}
		})
	}
}

// TestCloseDrains: a write either commits or reports an error; Close waits for queued
// writes.
func TestCloseDrains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	a := setup(t, s, "a@example.org")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for w := range 16 {
		wg.Go(func() {
			for i := range 20 {
				_, err := s.Deliver(context.Background(), message(fmt.Sprintf("%d-%d\r\n", w, i), a.ID))
				if errors.Is(err, errClosed) {
					return
				}
				if err != nil {
					t.Errorf("Deliver: %v", err)
					return
				}
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s = openPath(t, path, Options{})
	defer s.Close()
	box, _ := s.Mailbox(context.Background(), a.ID, store.Inbox)
	if box.Messages != ok {
		t.Errorf("%d messages stored, %d acknowledged", box.Messages, ok)
	}
}

// TestTwoStoresOneFile is the CLI case inside one process: a second Store on the same
// file writes, and the first sees it at once and can write next to it.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	server := openPath(t, path, Options{})
	defer server.Close()
	cli := openPath(t, path, Options{})
	defer cli.Close()

	a := setup(t, cli, "new@example.org")
	got, err := server.AccountByAddress(ctx, "new@example.org")
	if err != nil || got.ID != a.ID {
		t.Fatalf("server does not see the account the CLI added: %+v, %v", got, err)
	}
	// Both write into one mailbox at once; the busy timeout serializes them.
	var wg sync.WaitGroup
	for _, s := range []*Store{server, cli} {
		for w := range 4 {
			wg.Go(func() {
				for i := range 10 {
					if _, err := s.Deliver(ctx, message(fmt.Sprintf("%p-%d-%d\r\n", s, w, i), a.ID)); err != nil {
						t.Errorf("Deliver: %v", err)
					}
				}
			})
		}
	}
	wg.Wait()
	box, err := server.Mailbox(ctx, a.ID, store.Inbox)
	if err != nil || box.Messages != 80 || box.UIDNext != 81 {
		t.Errorf("after writes from two stores: %+v, %v", box, err)
	}
}

// Helper process modes, selected by environment variables when the test binary re-executes
// itself.
const (
	helperEnv   = "PETREL_STORE_HELPER"
	helperDBEnv = "PETREL_STORE_DB"
)

func runHelper(t *testing.T, mode, path string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDBEnv+"="+path)
	return cmd
}

// TestHelperProcess is not a test: it is the other process of the cross-process tests.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for the cross-process tests")
	}
	if mode == "expunge" {
		helperExpunge(os.Getenv(helperDBEnv))
	}
	ctx := context.Background()
	s, err := Open(os.Getenv(helperDBEnv), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch mode {
	case "lock":
		helperLock(ctx, s)
	case "add":
		if err := s.AddDomain(ctx, "cli.example"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if _, err := s.AddAccount(ctx, "user@cli.example", store.Credentials{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		s.Close()
		os.Exit(0)
	case "deliver":
		a, err := s.AccountByAddress(ctx, "crash@example.org")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var mu sync.Mutex
		for g := range 8 {
			go func() {
				for i := 0; ; i++ {
					id := fmt.Sprintf("%d-%d", g, i)
					if _, err := s.Deliver(ctx, message("Subject: "+id+"\r\n\r\n"+id+"\r\n", a.ID)); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(2)
					}
					mu.Lock()
					fmt.Fprintf(os.Stdout, "ACK %s\n", id) // unbuffered: one write per line
					mu.Unlock()
				}
			}()
		}
		time.Sleep(30 * time.Second) // the parent kills us long before
		os.Exit(3)
	}
	os.Exit(4)
}

// TestOtherProcessAddsAccount: `petrel account add` runs in another process while the
// server has the database open and is busy writing; the other process gets its turn, and
// the server sees the account at once and delivers to it.
func TestOtherProcessAddsAccount(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	defer s.Close()
	a := setup(t, s, "a@example.org")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Deliver(ctx, message(fmt.Sprintf("%d-%d\r\n", w, i), a.ID)); err != nil {
					t.Errorf("Deliver: %v", err)
					return
				}
			}
		})
	}
	start := time.Now()
	out, err := runHelper(t, "add", path).CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	t.Logf("other process done in %v while the server was delivering", time.Since(start))
	other, err := s.AccountByAddress(ctx, "user@cli.example")
	if err != nil {
		t.Fatalf("account added by another process: %v", err)
	}
	if _, err := s.Deliver(ctx, message("hi\r\n", other.ID)); err != nil {
		t.Fatal(err)
	}
}

// TestCrash kills a process with SIGKILL while it delivers, then checks that every message
// it acknowledged is there exactly once, from the still-open parent store and after a
// reopen. Meanwhile the parent writes into the same mailbox, from its own process.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	a := setup(t, s, "crash@example.org")

	cmd := runHelper(t, "deliver", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	parentDone := make(chan int)
	stop := make(chan struct{})
	go func() {
		n := 0
		defer func() { parentDone <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Deliver(ctx, message(fmt.Sprintf("Subject: parent\r\n\r\nparent-%d\r\n", n), a.ID)); err != nil {
				t.Errorf("parent Deliver: %v", err)
				return
			}
			n++
		}
	}()

	const killAfter = 300
	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
			acked[id] = true
			if len(acked) == killAfter {
				cmd.Process.Kill() // SIGKILL: no chance to clean up
			}
		}
	}
	cmd.Wait()
	close(stop)
	parentN := <-parentDone
	if len(acked) < killAfter {
		t.Fatalf("helper acknowledged only %d messages before exiting:\n%s", len(acked), stderr.String())
	}
	t.Logf("child acknowledged %d messages before SIGKILL, parent delivered %d", len(acked), parentN)

	check := func(s *Store) {
		t.Helper()
		box, err := s.Mailbox(ctx, a.ID, store.Inbox)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := s.Messages(ctx, box.ID, store.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		parent := 0
		for _, m := range ms {
			r, err := s.OpenBlob(ctx, m.BlobID)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			_, id, _ := strings.Cut(string(b), "\r\n\r\n")
			id = strings.TrimSuffix(id, "\r\n")
			if strings.HasPrefix(id, "parent-") {
				parent++
				continue
			}
			count[id]++
		}
		for id := range acked {
			if count[id] != 1 {
				t.Errorf("acknowledged message %s stored %d times", id, count[id])
			}
		}
		for id, n := range count {
			if n != 1 {
				t.Errorf("message %s stored %d times", id, n)
			}
		}
		if parent != parentN || box.Messages != len(ms) {
			t.Errorf("parent messages %d of %d; mailbox says %d messages, %d listed", parent, parentN, box.Messages, len(ms))
		}
	}
	check(s)
	s.Close()
	s = openPath(t, path, Options{})
	defer s.Close()
	check(s)
}

const benchAddress = "bench@example.org"

func benchmarkDeliver(b *testing.B, opts Options) {
	// b.TempDir is under $TMPDIR: check with `df` that it is a real disk before quoting
	// numbers, since fsync on tmpfs costs nothing.
	s := openTemp(b, opts)
	defer s.Close()
	a := setup(b, s, benchAddress)
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n"), 2048/66+1)[:2048]
	ctx := context.Background()
	b.SetParallelism(16) // 16 × GOMAXPROCS(2) = 32 writers, like 32 SMTP connections
	b.SetBytes(int64(len(body)))
	batches := s.batches.Load()
	cpu := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := &store.Delivery{
				Targets: []store.Target{{AccountID: a.ID, Mailbox: store.Inbox}},
				Body:    bytes.NewReader(body),
				Size:    int64(len(body)),
				Parsed:  store.ParsedMessage{MessageID: "bench@example.org", Subject: "bench"},
			}
			if _, err := s.Deliver(ctx, d); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	// Disk latency on a shared machine varies a lot; these two explain a msgs/s figure.
	b.ReportMetric(float64(b.N)/float64(s.batches.Load()-batches), "msgs/commit")
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/msg")
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDeliverParallel: 2 KB messages from 32 goroutines with group commit.
func BenchmarkDeliverParallel(b *testing.B) { benchmarkDeliver(b, Options{}) }

// BenchmarkDeliverParallelNoGroup: the same with one fsync per message (MaxBatch=1).
func BenchmarkDeliverParallelNoGroup(b *testing.B) { benchmarkDeliver(b, Options{MaxBatch: 1}) }

// TestDefaultQuota: an account without limits of its own has Options.DefaultQuota, in
// Quota and in the commit, and its own setting overrides it.
func TestDefaultQuota(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{DefaultQuota: store.QuotaLimits{Messages: 1}})
	a := setup(t, s, "a@example.org").ID
	q, err := s.Quota(ctx, a)
	if err != nil || q.Limits != (store.QuotaLimits{Messages: 1}) || q.Setting.Messages != store.QuotaDefault {
		t.Fatalf("Quota = %+v, %v", q, err)
	}
	if _, err := s.Deliver(ctx, message("Subject: 1\r\n\r\n1\r\n", a)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx, message("Subject: 2\r\n\r\n2\r\n", a)); !errors.Is(err, store.ErrOverQuota) {
		t.Fatalf("second delivery: %v, want over quota", err)
	}
	if err := s.SetQuota(ctx, a, store.QuotaLimits{Storage: store.QuotaDefault, Messages: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx, message("Subject: 2\r\n\r\n2\r\n", a)); err != nil {
		t.Fatalf("delivery without a limit: %v", err)
	}
}

// TestObserveCommit: the committer reports every write batch, with the requests in it (the
// store's own background writes may add some).
func TestObserveCommit(t *testing.T) {
	var mu sync.Mutex
	var batches, requests int
	s := openTemp(t, Options{ObserveCommit: func(d time.Duration, n int) {
		mu.Lock()
		defer mu.Unlock()
		if d <= 0 || n < 1 {
			t.Errorf("ObserveCommit(%v, %d)", d, n)
		}
		batches++
		requests += n
	}})
	defer s.Close()
	a := setup(t, s, "a@example.org")
	mu.Lock()
	before := requests
	mu.Unlock()
	for i := range 5 {
		if _, err := s.Deliver(context.Background(), message(fmt.Sprintf("%d\r\n", i), a.ID)); err != nil {
			t.Fatal(err)
		}
	}
	// The committer answers a request before it reports the batch: wait for the report.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n, b := requests-before, batches
		mu.Unlock()
		if n >= 5 && int64(b) == s.batches.Load() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("observed %d requests for 5 deliveries, %d batches of %d run", n, b, s.batches.Load())
		}
	}
}

func TestConformanceGreylist(t *testing.T) {
	s := openTemp(t, Options{})
	t.Cleanup(func() { s.Close() })
	storetest.RunGreylist(t, s)
}

func TestConformanceBatchAppender(t *testing.T) {
	storetest.RunBatchAppender(t, func(t *testing.T) storetest.BatchStore { return openTemp(t, Options{}) })
}

// TestAppendBatchSharesCommits: a run of messages costs a commit per committer batch, not one
// per message.
func TestAppendBatchSharesCommits(t *testing.T) {
	s := openTemp(t, Options{})
	a := setup(t, s, "alice@example.org")
	var msgs []store.BatchMessage
	for i := range 200 {
		body := fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)
		msgs = append(msgs, store.BatchMessage{UID: uint32(i + 1), AppendMessage: store.AppendMessage{Body: strings.NewReader(body), Size: int64(len(body))}})
	}
	before := s.batches.Load()
	if _, err := s.AppendBatch(t.Context(), a.ID, store.Inbox, msgs); err != nil {
		t.Fatal(err)
	}
	// 400 requests (an adoption and an append per message) in batches of at most 128.
	if n := s.batches.Load() - before; n > 40 {
		t.Errorf("%d commits for 200 messages", n)
	}
}

func TestSieveConformance(t *testing.T) {
	storetest.RunSieve(t, func(t *testing.T) storetest.SieveStore { return openTemp(t, Options{}) })
}

func TestJunkStats(t *testing.T) {
	storetest.RunJunk(t, func(t *testing.T) storetest.JunkStore { return openTemp(t, Options{}) })
}

func TestMultiAppend(t *testing.T) {
	storetest.RunMultiAppend(t, func(t *testing.T) store.Store { return openTemp(t, Options{}) })
}

func TestAdmins(t *testing.T) {
	storetest.RunAdmins(t, openTemp(t, Options{}))
}

func TestSorter(t *testing.T) {
	storetest.RunSorter(t, func(t *testing.T) storetest.SorterStore { return openTemp(t, Options{}) })
}

func TestPackSortKeys(t *testing.T) {
	for _, k := range []*store.SortKeys{
		{},
		{Date: time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC), Subject: "MOON", Reply: true, From: "A", To: "B", Cc: "C",
			DisplayFrom: "NEIL", DisplayTo: "HOUSTON", MessageID: "1@x", References: []string{"0@x", "a@b"}},
		{Subject: strings.Repeat("é", 300), References: []string{"x"}},
	} {
		got, err := store.UnpackSortKeys(store.PackSortKeys(k))
		if err != nil || !reflect.DeepEqual(got, k) {
			t.Errorf("unpack(pack(%+v)) = %+v, %v", k, got, err)
		}
	}
	packed := store.PackSortKeys(&store.SortKeys{Subject: "HELLO", MessageID: "x"})
	for _, bad := range [][]byte{nil, packed[:len(packed)-1], {2 /* has a date, and none follows */}, append([]byte{0}, 0xff, 0xff, 0xff)} {
		if k, err := store.UnpackSortKeys(bad); err == nil {
			t.Errorf("unpack(%q) = %+v, want an error", bad, k)
		}
	}
}

func TestWebSessions(t *testing.T) {
	storetest.RunWebSessions(t, openTemp(t, Options{}))
}

func TestSubscriptionChanges(t *testing.T) {
	storetest.RunSubscriptionChanges(t, func(t *testing.T) store.Store { return openTemp(t, Options{}) })
}

func TestPulls(t *testing.T) {
	storetest.RunPulls(t, func(t *testing.T) storetest.PullStore { return openTemp(t, Options{}) })
	t.Run("state", func(t *testing.T) {
		storetest.RunPullState(t, func(t *testing.T) storetest.PullStateStore { return openTemp(t, Options{}) })
	})
	t.Run("copies", func(t *testing.T) {
		storetest.RunPulledCopies(t, func(t *testing.T) storetest.PulledCopiesStore { return openTemp(t, Options{}) })
	})
	storetest.RunPullClaims(t, openTemp(t, Options{}))
}

// TestCopyResume interrupts a copy between two embedded stores and runs it again until it
// finishes (the PostgreSQL store's tests do the same across backends).
func TestCopyResume(t *testing.T) {
	open := func(t *testing.T) storetest.CopyStore { return openTemp(t, Options{}) }
	storetest.RunCopyResume(t, open, open)
}

func TestBlobBatch(t *testing.T) {
	storetest.RunBlobBatch(t, func(t *testing.T) storetest.BlobBatchStore { return openTemp(t, Options{}) })
}

func TestFlagSearch(t *testing.T) {
	storetest.RunFlagSearch(t, func(t *testing.T) storetest.FlagSearchStore { return openTemp(t, Options{}) })
}

// TestEmptyListingsConcurrently lists an empty mailbox from more goroutines than the read
// pool has connections. An empty listing asks whether the mailbox exists; asked while the
// listing's rows were still open, that held one connection and waited for a second, and
// with every connection held so the readers waited on each other for ever.
func TestEmptyListingsConcurrently(t *testing.T) {
	s := openTemp(t, Options{})
	defer s.Close()
	a := setup(t, s, "a@example.org")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mb, err := s.CreateMailbox(ctx, a.ID, "Empty")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for range 20 {
				if _, err := s.UIDsByFlag(ctx, mb.ID, nil, store.FlagSeen, false); err != nil {
					errs <- err
					return
				}
				if _, err := s.Vanished(ctx, mb.ID, store.Filter{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("listing an empty mailbox: %v", err)
	}
}

func TestHeaderBatch(t *testing.T) {
	storetest.RunHeaderBatch(t, func(t *testing.T) storetest.HeaderBatchStore { return openTemp(t, Options{}) })
}

func TestFlagFirst(t *testing.T) {
	storetest.RunFlagFirst(t, func(t *testing.T) storetest.FlagFirstStore { return openTemp(t, Options{}) })
}

func TestFields(t *testing.T) {
	storetest.RunFields(t, func(t *testing.T) storetest.FieldsStore { return openTemp(t, Options{}) })
}

func TestJunkVocabulary(t *testing.T) {
	storetest.RunJunkVocabulary(t, func(t *testing.T) storetest.JunkVocabularyStore { return openTemp(t, Options{}) })
}

func TestDKIMKeys(t *testing.T) {
	// Two stores on one data directory: the server and a command beside it.
	path := filepath.Join(t.TempDir(), "petrel.db")
	a := openPath(t, path, Options{})
	b := openPath(t, path, Options{})
	storetest.RunDKIMKeys(t, a, b)
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "dkim", "keys.test", "a.b-2.pem")); err != nil {
		t.Errorf("the embedded store keeps keys as files of the data directory: %v", err)
	}
}

// TestHeaderBackfill runs the header copies' migration over bodies stored without them: it
// copies a header where SQL can be sure of store.HeaderSize's answer, and only the same
// octets ReadHeaders gives for a body stored after it.
func TestHeaderBackfill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	a := setup(t, s, "a@example.org")
	bodies := []string{
		"Subject: one\r\nFrom: a@example.org\r\n\r\nbody\r\n\r\nmore\r\n",
		"Subject: lf\nX-A: b\n\nbody\r\n\r\n",
		"Subject: lf later\r\nX-A: b\n\n\r\n\r\n",
		"Subject: no body\r\nX-A: b\r\n",
		"\r\nSubject: not a header\r\n\r\nbody\r\n",
		"\nSubject: not a header\r\n\r\nbody\r\n",
	}
	var ids []int64
	for _, b := range bodies {
		d, err := s.Deliver(context.Background(), message(b, a.ID))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.Messages[0].BlobID)
	}
	read := func() map[int64]string {
		got := map[int64]string{}
		if err := s.ReadHeaders(context.Background(), ids, func(id int64, h []byte) error {
			got[id] = string(h)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	fresh := read()
	if len(fresh) != len(bodies) {
		t.Fatalf("a new store copied %d of %d headers", len(fresh), len(bodies))
	}
	var backfill string
	for _, m := range migrations {
		if i := strings.Index(m, "INSERT INTO blob_headers"); i >= 0 {
			backfill = m[i:]
		}
	}
	if backfill == "" {
		t.Fatal("no migration fills blob_headers")
	}
	// Closed, so that no background writer of the store holds the database meanwhile.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damage(t, path, `DELETE FROM blob_headers`)
	damage(t, path, backfill)
	s = openPath(t, path, Options{})
	defer s.Close()
	got := read()
	if _, ok := got[ids[0]]; !ok {
		t.Errorf("the migration did not copy an ordinary header")
	}
	for id, h := range got {
		if h != fresh[id] {
			t.Errorf("blob %d: the migration copied %q; want %q", id, h, fresh[id])
		}
	}
}
