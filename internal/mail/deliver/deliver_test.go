package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/store"
)

// fakeStore is an in-memory Store.
type fakeStore struct {
	domains    map[string]store.Domain
	accounts   map[string]store.Account
	aliases    map[string][]string
	deliveries []fakeDelivery
	fail       error // returned by Deliver
	quotas     map[int64]store.Quota
}

type fakeDelivery struct {
	d       store.Delivery
	body    []byte
	outBody []byte // the queued copy, if any
}

func newFakeStore() *fakeStore {
	fs := &fakeStore{
		domains:  map[string]store.Domain{},
		accounts: map[string]store.Account{},
		aliases:  map[string][]string{},
	}
	fs.domains["example.test"] = store.Domain{Name: "example.test"}
	fs.domains["catch.test"] = store.Domain{Name: "catch.test", CatchAll: "postmaster@catch.test"}
	fs.domains["badcatch.test"] = store.Domain{Name: "badcatch.test", CatchAll: "nobody@badcatch.test"}
	for i, a := range []string{"alice@example.test", "bob@example.test", "carol@example.test", "postmaster@catch.test", "dave@catch.test"} {
		fs.accounts[a] = store.Account{ID: int64(i + 1), Address: a}
	}
	fs.aliases["team@example.test"] = []string{"alice@example.test", "bob@example.test", "alice@example.test"}
	fs.aliases["info@example.test"] = []string{"team@example.test", "carol@example.test"} // alias of alias
	fs.aliases["loop1@example.test"] = []string{"loop2@example.test"}
	fs.aliases["loop2@example.test"] = []string{"loop1@example.test"}
	fs.aliases["self@example.test"] = []string{"self@example.test"}
	fs.aliases["half@example.test"] = []string{"bob@example.test", "someone@remote.example", "ghost@example.test"}
	fs.aliases["dangling@example.test"] = []string{"ghost@example.test"}
	fs.aliases["tagged@example.test"] = []string{"carol+lists@example.test"}
	// A chain a1 → a2 → ... → a7 → alice is deeper than allowed; c1 → ... → c4 → alice is not.
	for i := 1; i <= 6; i++ {
		fs.aliases["a"+string(rune('0'+i))+"@example.test"] = []string{"a" + string(rune('0'+i+1)) + "@example.test"}
	}
	fs.aliases["a7@example.test"] = []string{"alice@example.test"}
	for i := 1; i <= 3; i++ {
		fs.aliases["c"+string(rune('0'+i))+"@example.test"] = []string{"c" + string(rune('0'+i+1)) + "@example.test"}
	}
	fs.aliases["c4@example.test"] = []string{"alice@example.test"}
	fs.aliases["sales@catch.test"] = []string{"dave@catch.test"}
	return fs
}

func (f *fakeStore) Quota(_ context.Context, id int64) (store.Quota, error) {
	return f.quotas[id], nil
}

func (f *fakeStore) Domain(_ context.Context, name string) (store.Domain, error) {
	d, ok := f.domains[name]
	if !ok {
		return store.Domain{}, store.ErrNotFound
	}
	return d, nil
}

func (f *fakeStore) AccountByAddress(_ context.Context, addr string) (store.Account, error) {
	a, ok := f.accounts[addr]
	if !ok {
		return store.Account{}, store.ErrNotFound
	}
	return a, nil
}

func (f *fakeStore) Alias(_ context.Context, addr string) (store.Alias, error) {
	t, ok := f.aliases[addr]
	if !ok {
		return store.Alias{}, store.ErrNotFound
	}
	return store.Alias{Address: addr, Targets: t}, nil
}

func (f *fakeStore) Deliver(_ context.Context, d *store.Delivery) (store.Delivered, error) {
	if f.fail != nil {
		return store.Delivered{}, f.fail
	}
	body, err := io.ReadAll(d.Body)
	if err != nil {
		return store.Delivered{}, err
	}
	fd := fakeDelivery{d: *d, body: body}
	if d.Outbound != nil {
		if fd.outBody, err = io.ReadAll(d.Outbound.Body); err != nil {
			return store.Delivered{}, err
		}
		if int64(len(fd.outBody)) != d.Outbound.Size {
			return store.Delivered{}, fmt.Errorf("outbound size %d, body %d bytes", d.Outbound.Size, len(fd.outBody))
		}
	}
	f.deliveries = append(f.deliveries, fd)
	return store.Delivered{BlobID: int64(len(f.deliveries))}, nil
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func inbox(ids ...int64) []store.Target {
	var t []store.Target
	for _, id := range ids {
		t = append(t, store.Target{AccountID: id, Mailbox: store.Inbox})
	}
	return t
}

func TestResolve(t *testing.T) {
	d := New(newFakeStore(), discardLog())
	cases := []struct {
		rcpt string
		want []store.Target
		err  error
	}{
		{"alice@example.test", inbox(1), nil},
		{"Alice@Example.TEST", inbox(1), nil},
		{"alice+news@example.test", inbox(1), nil},
		{"ALICE+News+more@example.test", inbox(1), nil},
		{"team@example.test", inbox(1, 2), nil},        // fan-out, duplicate target once
		{"team+x@example.test", inbox(1, 2), nil},      // sub-address of an alias
		{"info@example.test", inbox(1, 2, 3), nil},     // alias of an alias
		{"tagged@example.test", inbox(3), nil},         // alias target with a tag
		{"c1@example.test", inbox(1), nil},             // chain of depth 4 is allowed
		{"a1@example.test", nil, ErrAliasLoop},         // chain deeper than 5
		{"loop1@example.test", nil, ErrAliasLoop},      // a → b → a
		{"self@example.test", nil, ErrAliasLoop},       // a → a
		{"half@example.test", inbox(2), nil},           // remote and unknown targets skipped
		{"dangling@example.test", nil, ErrUnknownUser}, // no target delivers
		{"nobody@example.test", nil, ErrUnknownUser},
		{"+tag@example.test", nil, ErrUnknownUser},
		{"alice@other.test", nil, ErrNotHosted},
		{"random@catch.test", inbox(4), nil},     // catch-all
		{"sales+x@catch.test", inbox(5), nil},    // alias wins over catch-all
		{"dave@catch.test", inbox(5), nil},       // account wins over catch-all
		{"x@badcatch.test", nil, ErrUnknownUser}, // catch-all names an unknown address
	}
	for _, c := range cases {
		t.Run(c.rcpt, func(t *testing.T) {
			a, err := address.Parse(c.rcpt)
			if err != nil {
				t.Fatalf("address.Parse(%q): %v", c.rcpt, err)
			}
			got, err := d.Resolve(context.Background(), a)
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("targets = %v, want %v", got, c.want)
			}
		})
	}
}

// TestReaches is the SMTP sender policy's question: which addresses may an account send as?
func TestReaches(t *testing.T) {
	fs := newFakeStore()
	d := New(fs, discardLog())
	alice, carol, postmaster := fs.accounts["alice@example.test"], fs.accounts["carol@example.test"], fs.accounts["postmaster@catch.test"]
	cases := []struct {
		from string
		acct store.Account
		want bool
	}{
		{"alice@example.test", alice, true},
		{"ALICE+News@example.test", alice, true}, // +tag of the account
		{"team@example.test", alice, true},       // alias delivering to alice and bob
		{"team+x@example.test", alice, true},     // +tag of an alias
		{"info@example.test", alice, true},       // alias of an alias
		{"tagged@example.test", carol, true},     // alias to a +tag of carol
		{"c1@example.test", alice, true},         // chain of depth 4
		{"a1@example.test", alice, false},        // chain deeper than the resolver allows
		{"loop1@example.test", alice, false},     // a loop owns nothing
		{"bob@example.test", alice, false},       // another account
		{"half@example.test", alice, false},      // an alias that does not reach alice
		{"nobody@example.test", alice, false},    // unknown
		{"alice@other.test", alice, false},       // not hosted
		{"random@catch.test", postmaster, false}, // the catch-all does not make an address owned
		{"postmaster@catch.test", postmaster, true},
	}
	for _, c := range cases {
		a, err := address.Parse(c.from)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := d.Reaches(context.Background(), a, c.acct); err != nil || got != c.want {
			t.Errorf("Reaches(%s, %s) = %v, %v; want %v", c.from, c.acct.Address, got, err, c.want)
		}
	}
	// A store failure is an error, not a refusal.
	boom := errors.New("disk on fire")
	a, _ := address.Parse("team@example.test")
	if _, err := New(errStore{boom}, discardLog()).Reaches(context.Background(), a, alice); !errors.Is(err, boom) {
		t.Errorf("store failure: err = %v, want it passed on", err)
	}
}

func TestResolveStoreError(t *testing.T) {
	boom := errors.New("disk on fire")
	d := New(errStore{boom}, discardLog())
	a, err := address.Parse("alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Resolve(context.Background(), a)
	if !errors.Is(err, boom) || errors.Is(err, ErrUnknownUser) || errors.Is(err, ErrNotHosted) {
		t.Errorf("err = %v, want the store error", err)
	}
}

type errStore struct{ err error }

func (e errStore) Quota(context.Context, int64) (store.Quota, error) { return store.Quota{}, e.err }

func (e errStore) Domain(context.Context, string) (store.Domain, error) {
	return store.Domain{Name: "example.test"}, nil
}
func (e errStore) AccountByAddress(context.Context, string) (store.Account, error) {
	return store.Account{}, e.err
}
func (e errStore) Alias(context.Context, string) (store.Alias, error) { return store.Alias{}, e.err }
func (e errStore) Deliver(context.Context, *store.Delivery) (store.Delivered, error) {
	return store.Delivered{}, e.err
}

func TestDeliver(t *testing.T) {
	fs := newFakeStore()
	d := New(fs, discardLog())
	msg := "From: Alice <alice@example.org>\r\nSubject: hi\r\nMessage-ID: <m1@example.org>\r\n\r\nbody\r\n"
	sp := NewSpool(t.TempDir(), 1<<20)
	defer sp.Close()
	io.WriteString(sp, msg)

	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	env := Envelope{
		MailFrom:   "sender@example.org",
		Targets:    append(append(inbox(1, 2), store.Target{AccountID: 1}), inbox(2)...),
		ReceivedAt: at,
	}
	if _, err := d.Deliver(context.Background(), env, sp); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if len(fs.deliveries) != 1 {
		t.Fatalf("%d store commits, want exactly 1", len(fs.deliveries))
	}
	got := fs.deliveries[0]
	if !reflect.DeepEqual(got.d.Targets, inbox(1, 2)) {
		t.Errorf("targets = %v, want deduplicated [1 2]", got.d.Targets)
	}
	if string(got.body) != msg || got.d.Size != int64(len(msg)) {
		t.Errorf("body %q size %d", got.body, got.d.Size)
	}
	if got.d.Parsed.Subject != "hi" || got.d.Parsed.MessageID != "m1@example.org" || len(got.d.Parsed.Structure) == 0 {
		t.Errorf("parsed = %+v", got.d.Parsed)
	}
	if got.d.MailFrom != "sender@example.org" || !got.d.ReceivedAt.Equal(at) {
		t.Errorf("envelope = %q %v", got.d.MailFrom, got.d.ReceivedAt)
	}
	if !got.d.InboxFallback {
		t.Error("SMTP delivery without the INBOX fallback: a vanished folder would bounce mail")
	}

	// A store failure is returned and nothing counts as delivered.
	fs.fail = errors.New("fsync failed")
	if _, err := d.Deliver(context.Background(), env, sp); !errors.Is(err, fs.fail) {
		t.Errorf("err = %v, want the store error", err)
	}
	if _, err := d.Deliver(context.Background(), Envelope{}, sp); err == nil {
		t.Error("delivery without targets succeeded")
	}
}

func TestSpool(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 10, 100, 101, 5000} {
		for _, fill := range []string{"Write", "ReadFrom"} {
			sp := NewSpool(dir, 100)
			want := bytes.Repeat([]byte("0123456789"), size/10+1)[:size]
			if fill == "ReadFrom" {
				// Through io.Copy, in uneven reads, as the SMTP session fills it.
				if n, err := io.Copy(sp, iotest.HalfReader(bytes.NewReader(want))); n != int64(size) || err != nil {
					t.Fatalf("ReadFrom: %d, %v", n, err)
				}
			}
			// Write in uneven pieces to cross the memory limit mid-write.
			for rest := want; fill == "Write" && len(rest) > 0; {
				n := min(len(rest), 33)
				if _, err := sp.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			if sp.Size() != int64(size) || sp.InMemory() != (size <= 100) {
				t.Errorf("size %d: Size()=%d InMemory()=%v", size, sp.Size(), sp.InMemory())
			}
			for range 2 { // readable more than once
				got, err := io.ReadAll(sp.Reader())
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("size %d: read %d bytes, err %v", size, len(got), err)
				}
			}
			if size > 3 {
				p := make([]byte, 3)
				if n, err := sp.ReadAt(p, int64(size-3)); n != 3 || err != nil || !bytes.Equal(p, want[size-3:]) {
					t.Errorf("ReadAt tail: %d %v %q", n, err, p)
				}
			}
			if err := sp.Close(); err != nil {
				t.Error(err)
			}
		}
	}
	// The temporary files are unlinked at once: nothing is left in dir.
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("spool dir has %v (err %v)", entries, err)
	}
	if _, err := NewSpool(filepath.Join(dir, "missing"), 1).Write([]byte("xx")); err == nil {
		t.Error("spool into a missing directory did not fail")
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"alice@example.test", "team+x@example.test", "loop1@example.test", "a@catch.test", "x@nowhere"} {
		f.Add(s)
	}
	d := New(newFakeStore(), discardLog())
	f.Fuzz(func(t *testing.T, rcpt string) {
		a, err := address.Parse(rcpt)
		if err != nil {
			return
		}
		targets, err := d.Resolve(context.Background(), a)
		if err == nil && len(targets) == 0 {
			t.Fatalf("%q: no targets and no error", rcpt)
		}
		if err != nil && len(targets) != 0 {
			t.Fatalf("%q: targets with error %v", rcpt, err)
		}
		if strings.Contains(rcpt, "loop") && err == nil && strings.HasPrefix(a.Key(), "loop") {
			t.Fatalf("%q: loop resolved", rcpt)
		}
	})
}

// countingStore counts directory lookups.
type countingStore struct {
	*fakeStore
	lookups int
}

func (c *countingStore) AccountByAddress(ctx context.Context, addr string) (store.Account, error) {
	c.lookups++
	return c.fakeStore.AccountByAddress(ctx, addr)
}

func (c *countingStore) Alias(ctx context.Context, addr string) (store.Alias, error) {
	c.lookups++
	return c.fakeStore.Alias(ctx, addr)
}

// TestResolveCache: a successful resolution is reused until it expires; a failed one is
// not; what the caller does with a result does not change the cached one.
func TestResolveCache(t *testing.T) {
	cs := &countingStore{fakeStore: newFakeStore()}
	d := New(cs, discardLog())
	now := time.Unix(1000, 0)
	d.cache.now = func() time.Time { return now }
	resolve := func(rcpt string) ([]store.Target, error) {
		t.Helper()
		a, err := address.Parse(rcpt)
		if err != nil {
			t.Fatal(err)
		}
		return d.Resolve(context.Background(), a)
	}
	lookups := func(rcpt string) int {
		t.Helper()
		before := cs.lookups
		resolve(rcpt)
		return cs.lookups - before
	}

	if n := lookups("team@example.test"); n == 0 {
		t.Fatal("first resolution did no lookup")
	}
	got, _ := resolve("Team@example.test") // same key
	if n := lookups("team@example.test"); n != 0 {
		t.Errorf("cached resolution did %d lookups", n)
	}
	got[0].AccountID = 99 // the caller's copy
	if got, _ := resolve("team@example.test"); !reflect.DeepEqual(got, inbox(1, 2)) {
		t.Errorf("cached targets = %v after the caller changed its copy", got)
	}

	// A change in the store shows once the entry has expired.
	cs.aliases["team@example.test"] = []string{"carol@example.test"}
	now = now.Add(resolveCacheTTL - time.Millisecond)
	if got, _ := resolve("team@example.test"); !reflect.DeepEqual(got, inbox(1, 2)) {
		t.Errorf("targets before expiry = %v", got)
	}
	now = now.Add(time.Millisecond)
	if got, _ := resolve("team@example.test"); !reflect.DeepEqual(got, inbox(3)) {
		t.Errorf("targets after expiry = %v, want the new alias", got)
	}

	// Failures are looked up every time, so a new account receives mail at once.
	if _, err := resolve("newbie@example.test"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("err = %v", err)
	}
	cs.accounts["newbie@example.test"] = store.Account{ID: 7}
	if got, err := resolve("newbie@example.test"); err != nil || !reflect.DeepEqual(got, inbox(7)) {
		t.Errorf("new account: %v, %v", got, err)
	}
}

// TestResolveCacheBound: the cache never holds more than resolveCacheMax entries.
func TestResolveCacheBound(t *testing.T) {
	d := New(newFakeStore(), discardLog())
	for i := range resolveCacheMax + 10 {
		a, err := address.Parse(fmt.Sprintf("alice+%d@example.test", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Resolve(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(d.cache.entries); n > resolveCacheMax || n == 0 {
		t.Errorf("%d entries, want 1..%d", n, resolveCacheMax)
	}
}

// TestSpoolPool checks that spools from a pool keep their bodies apart however memory is
// reused: one closed twice must not give its buffer back twice (two later spools would
// share it), and a reused buffer shows nothing of the body it held before.
func TestSpoolPool(t *testing.T) {
	p := NewSpoolPool(t.TempDir(), 8192) // room for the first buffer a spool allocates (4 KiB)
	first := p.Get()
	io.WriteString(first, strings.Repeat("old body ", 10))
	first.Close()
	first.Close()

	a, b := p.Get(), p.Get()
	io.WriteString(a, "body of a")
	io.Copy(b, strings.NewReader("body of b"))
	for sp, want := range map[*Spool]string{a: "body of a", b: "body of b"} {
		got, err := io.ReadAll(sp.Reader())
		if err != nil || string(got) != want {
			t.Errorf("read %q (err %v), want %q", got, err, want)
		}
	}
	a.Close()
	b.Close()

	// A body over the memory limit moves to a file, and a spool from the pool works as
	// well after that.
	big := p.Get()
	want := strings.Repeat("x", 9000)
	io.WriteString(big, want)
	if got, err := io.ReadAll(big.Reader()); err != nil || string(got) != want || big.InMemory() {
		t.Errorf("over the limit: read %d bytes (err %v), in memory %v", len(got), err, big.InMemory())
	}
	big.Close()
	small := p.Get()
	defer small.Close()
	io.WriteString(small, "s")
	if got, _ := io.ReadAll(small.Reader()); string(got) != "s" {
		t.Errorf("after a file spool: read %q", got)
	}
}

// TestCheckQuota: a recipient is refused when the message (or, size unknown, one more
// byte) would take its account over either limit; a target twice counts twice.
func TestCheckQuota(t *testing.T) {
	fs := newFakeStore()
	fs.quotas = map[int64]store.Quota{
		1: {Limits: store.QuotaLimits{Storage: 1000}, Usage: store.Usage{Size: 900}},
		2: {Limits: store.QuotaLimits{Messages: 3}, Usage: store.Usage{Messages: 2}},
		3: {Limits: store.QuotaLimits{Storage: 500}, Usage: store.Usage{Size: 500}},
	}
	d := New(fs, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	in := func(ids ...int64) []store.Target {
		var out []store.Target
		for _, id := range ids {
			out = append(out, store.Target{AccountID: id, Mailbox: store.Inbox})
		}
		return out
	}
	for _, c := range []struct {
		targets []store.Target
		size    int64
		over    bool
	}{
		{in(1), 100, false},
		{in(1), 101, true},
		{in(1), 0, false},
		{in(2), 0, false},
		{append(in(2), store.Target{AccountID: 2, Mailbox: "Archive"}), 10, true},
		{in(3), 0, true},
		{in(4), 1 << 30, false}, // no limits
		{in(4, 1), 200, true},
	} {
		err := d.CheckQuota(ctx, c.targets, c.size)
		if got := errors.Is(err, store.ErrOverQuota); got != c.over || (err != nil && !got) {
			t.Errorf("CheckQuota(%v, %d) = %v, want over quota %v", c.targets, c.size, err, c.over)
		}
	}
}

// quotaCountingStore counts quota reads.
type quotaCountingStore struct {
	*fakeStore
	reads int
}

func (c *quotaCountingStore) Quota(ctx context.Context, id int64) (store.Quota, error) {
	c.reads++
	return c.fakeStore.Quota(ctx, id)
}

// TestQuotaCache: a read that left room is reused until it expires and follows this
// Deliverer's own deliveries, so a mailbox it fills is refused at the next RCPT; an answer
// of "over" is never taken from the cache, so room made elsewhere shows at once.
func TestQuotaCache(t *testing.T) {
	cs := &quotaCountingStore{fakeStore: newFakeStore()}
	cs.quotas = map[int64]store.Quota{1: {Limits: store.QuotaLimits{Messages: 3}, Usage: store.Usage{Messages: 1}}}
	d := New(cs, discardLog())
	now := time.Unix(1000, 0)
	d.quota.now = func() time.Time { return now }
	ctx := context.Background()
	check := func(wantOver bool, wantReads int) {
		t.Helper()
		before := cs.reads
		err := d.CheckQuota(ctx, inbox(1), 10)
		if got := errors.Is(err, store.ErrOverQuota); got != wantOver || (err != nil && !got) {
			t.Errorf("CheckQuota = %v, want over quota %v", err, wantOver)
		}
		if n := cs.reads - before; n != wantReads {
			t.Errorf("%d quota reads, want %d", n, wantReads)
		}
	}
	deliver := func() {
		t.Helper()
		sp := NewSpool(t.TempDir(), 1<<20)
		defer sp.Close()
		io.WriteString(sp, "Subject: x\r\n\r\nhi\r\n")
		env := Envelope{MailFrom: "x@remote.example", Targets: inbox(1)}
		if _, err := d.Deliver(ctx, env, sp); err != nil {
			t.Fatal(err)
		}
		q := cs.quotas[1]
		q.Usage.Messages++
		cs.quotas[1] = q
	}

	check(false, 1)
	check(false, 0) // cached
	deliver()       // usage 2 of 3: the cached read counts it
	check(false, 0)
	deliver() // usage 3 of 3: over, read afresh to be sure
	check(true, 1)
	check(true, 1) // a refusal is never cached

	// Room made elsewhere (an expunge) shows at the next RCPT.
	cs.quotas[1] = store.Quota{Limits: store.QuotaLimits{Messages: 3}, Usage: store.Usage{Messages: 0}}
	check(false, 1)
	// A delivery elsewhere is missed until the read expires.
	cs.quotas[1] = store.Quota{Limits: store.QuotaLimits{Messages: 3}, Usage: store.Usage{Messages: 3}}
	check(false, 0)
	now = now.Add(quotaCacheTTL)
	check(true, 1)
}
