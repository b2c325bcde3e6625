package auth

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"petrel/internal/store"
)

// fakeDir is an in-memory Lookup.
type fakeDir struct {
	mu       sync.Mutex
	accounts map[string]store.Account // by address
	err      error                    // returned by every lookup if set
}

func (d *fakeDir) AccountByAddress(ctx context.Context, address string) (store.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return store.Account{}, d.err
	}
	a, ok := d.accounts[address]
	if !ok {
		return store.Account{}, store.ErrNotFound
	}
	return a, nil
}

func (d *fakeDir) setCredentials(address string, cred store.Credentials) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.accounts[address]
	a.Credentials = cred
	d.accounts[address] = a
}

// Credentials are slow to make (argon2id, more so under -race), so tests share them.
var (
	credPencil = sync.OnceValue(func() store.Credentials { return mustCredentials("pencil") })
	credOther  = sync.OnceValue(func() store.Credentials { return mustCredentials("other") })
)

func mustCredentials(pw string) store.Credentials {
	c, err := NewCredentials(pw)
	if err != nil {
		panic(err)
	}
	return c
}

var testRemote = netip.MustParseAddr("192.0.2.7")

// newTestService returns a Service with one account, user@example.com / "pencil", and
// millisecond throttling delays.
func newTestService(t testing.TB) (*Service, *fakeDir) {
	t.Helper()
	dir := &fakeDir{accounts: map[string]store.Account{
		"user@example.com": {ID: 7, Address: "user@example.com", Credentials: credPencil()},
	}}
	s := New(dir, Config{FailureDelay: time.Millisecond, MaxFailureDelay: 4 * time.Millisecond}, nil)
	return s, dir
}

func TestCheckPassword(t *testing.T) {
	s, _ := newTestService(t)
	ctx := context.Background()
	for _, user := range []string{"user@example.com", "USER@Example.COM"} {
		acct, err := s.CheckPassword(ctx, user, "pencil", testRemote)
		if err != nil {
			t.Fatalf("CheckPassword(%q): %v", user, err)
		}
		if acct.ID != 7 {
			t.Errorf("CheckPassword(%q) = account %d, want 7", user, acct.ID)
		}
	}
	for _, tc := range []struct{ user, pw string }{
		{"user@example.com", "Pencil"},
		{"user@example.com", ""},
		{"user@example.com", "pencil\n"},
		{"nobody@example.com", "pencil"},
		{"not an address", "pencil"},
		{"", ""},
	} {
		if _, err := s.CheckPassword(ctx, tc.user, tc.pw, testRemote); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckPassword(%q, %q) = %v, want ErrInvalid", tc.user, tc.pw, err)
		}
	}
}

func TestCheckPasswordStoreError(t *testing.T) {
	s, dir := newTestService(t)
	dir.err = errors.New("disk on fire")
	_, err := s.CheckPassword(context.Background(), "user@example.com", "pencil", testRemote)
	if err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("store failure gave %v, want a non-ErrInvalid error", err)
	}
}

func TestCheckPasswordUnusableHash(t *testing.T) {
	s, dir := newTestService(t)
	dir.setCredentials("user@example.com", store.Credentials{PasswordHash: "garbage"})
	_, err := s.CheckPassword(context.Background(), "user@example.com", "pencil", testRemote)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("unusable hash gave %v, want ErrInvalid", err)
	}
}

// TestCheckPasswordCache checks that a verified password skips argon2id (it succeeds while
// every hashing slot is taken) and that a password change or a wrong password does not.
func TestCheckPasswordCache(t *testing.T) {
	s, dir := newTestService(t)
	bg := context.Background()
	if _, err := s.CheckPassword(bg, "user@example.com", "pencil", testRemote); err != nil {
		t.Fatal(err)
	}

	for range cap(s.hashSem) {
		s.hashSem <- struct{}{}
	}
	defer func() {
		for range cap(s.hashSem) {
			<-s.hashSem
		}
	}()
	check := func(pw string) error {
		ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
		defer cancel()
		_, err := s.CheckPassword(ctx, "user@example.com", pw, testRemote)
		return err
	}
	if err := check("pencil"); err != nil {
		t.Errorf("cached login with no hashing slot free: %v", err)
	}
	if err := check("wrong"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wrong password: %v, want to wait for argon2id (deadline exceeded)", err)
	}
	dir.setCredentials("user@example.com", credOther())
	if err := check("pencil"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("after a password change: %v, want to wait for argon2id (deadline exceeded)", err)
	}
}

func TestCheckPasswordThrottles(t *testing.T) {
	dir := &fakeDir{accounts: map[string]store.Account{
		"user@example.com": {ID: 7, Address: "user@example.com", Credentials: credPencil()},
	}}
	s := New(dir, Config{FailureDelay: 30 * time.Millisecond, MaxFailureDelay: 50 * time.Millisecond}, nil)
	ctx := context.Background()
	timed := func(user, pw string) (time.Duration, error) {
		start := time.Now()
		_, err := s.CheckPassword(ctx, user, pw, testRemote)
		return time.Since(start), err
	}

	// The first warm-up failure also builds the dummy hash; not timed.
	timed("nobody@example.com", "x")
	if d, err := timed("user@example.com", "wrong"); !errors.Is(err, ErrInvalid) || d < 50*time.Millisecond {
		t.Errorf("second failure from one address: %v after %v, want ErrInvalid after >= 50ms", err, d)
	}

	// A success clears the user's counter, so a later wrong password from elsewhere waits
	// the first delay only (and the cap is not reached).
	if _, err := s.CheckPassword(ctx, "user@example.com", "pencil", testRemote); err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddr("2001:db8::1")
	start := time.Now()
	_, err := s.CheckPassword(ctx, "user@example.com", "wrong", other)
	if d := time.Since(start); !errors.Is(err, ErrInvalid) || d < 30*time.Millisecond {
		t.Errorf("failure after success: %v after %v, want ErrInvalid after >= 30ms", err, d)
	}

	// The delay ends with the context.
	slow := New(dir, Config{FailureDelay: time.Hour}, nil)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = slow.CheckPassword(cctx, "user@example.com", "wrong", testRemote)
	if d := time.Since(start); !errors.Is(err, ErrInvalid) || d > 10*time.Second {
		t.Errorf("cancelled delay: %v after %v, want ErrInvalid soon after the deadline", err, d)
	}
}

func TestNewDefaults(t *testing.T) {
	s := New(&fakeDir{}, Config{}, nil)
	if s.throttle.base != DefaultFailureDelay || s.throttle.max != DefaultMaxFailureDelay {
		t.Errorf("defaults %v/%v", s.throttle.base, s.throttle.max)
	}
	s = New(&fakeDir{}, Config{FailureDelay: time.Minute, MaxFailureDelay: time.Second}, nil)
	if s.throttle.max != time.Minute {
		t.Errorf("max %v below the first delay", s.throttle.max)
	}
}

func TestMechanisms(t *testing.T) {
	s, _ := newTestService(t)
	got := s.Mechanisms()
	want := []string{"SCRAM-SHA-256", "PLAIN", "LOGIN"}
	if len(got) != len(want) {
		t.Fatalf("Mechanisms() = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Mechanisms() = %v, want %v", got, want)
		}
		if _, err := s.NewSASL(context.Background(), want[i], testRemote); err != nil {
			t.Errorf("NewSASL(%q): %v", want[i], err)
		}
	}
	got[0] = "changed"
	if s.Mechanisms()[0] != "SCRAM-SHA-256" {
		t.Error("Mechanisms returns shared state")
	}
	if _, err := s.NewSASL(context.Background(), "plain", testRemote); err != nil {
		t.Errorf("NewSASL is case-sensitive: %v", err)
	}
	if _, err := s.NewSASL(context.Background(), "CRAM-MD5", testRemote); !errors.Is(err, ErrMechanism) {
		t.Errorf("NewSASL(CRAM-MD5) = %v, want ErrMechanism", err)
	}
}

// TestCheckPasswordCacheWhileWaiting: a login that waits for a hashing slot takes the result
// of a concurrent login of the same password when the slot comes, rather than hashing again.
// The stored hash here is of another password, so only the cache can let "pencil" in: a
// second argon2id run would refuse it.
func TestCheckPasswordCacheWhileWaiting(t *testing.T) {
	s, dir := newTestService(t)
	dir.setCredentials("user@example.com", credOther())
	checked := make(chan struct{})
	var once sync.Once
	s.now = func() time.Time {
		once.Do(func() { close(checked) }) // the first cache look, before the slot
		return time.Now()
	}
	for range cap(s.hashSem) {
		s.hashSem <- struct{}{}
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.CheckPassword(context.Background(), "user@example.com", "pencil", testRemote)
		done <- err
	}()
	<-checked
	acct, _ := dir.AccountByAddress(context.Background(), "user@example.com")
	s.cache.add(acct.ID, acct.Credentials.PasswordHash, "pencil", time.Now()) // the other login's result
	for range cap(s.hashSem) {
		<-s.hashSem
	}
	if err := <-done; err != nil {
		t.Errorf("login that waited for a slot: %v, want the cached result", err)
	}
}
