// Package auth checks credentials: password hashes, SASL mechanisms and failure throttling.
//
// Credentials (NewCredentials) are two independent secrets derived from one password: an
// argon2id hash for mechanisms that send the password (USER/PASS, PLAIN, LOGIN) and
// SCRAM-SHA-256 keys (RFC 5802, RFC 7677) for the mechanism that does not. Both see the same
// normalized password (normalizePassword), so they always agree.
//
// Rules this package keeps:
//   - A caller learns "invalid credentials" (ErrInvalid) and nothing more: unknown user, wrong
//     password and an account without usable credentials look the same, in result and in time
//     (an unknown user is checked against a dummy hash; SCRAM answers with a fake salt).
//   - Every failure is throttled (throttle.go) before it is answered; the delay honours the
//     caller's context.
//   - argon2id is expensive on purpose, so verified passwords are cached (cache.go) and at
//     most GOMAXPROCS hashes run at once: login throughput and memory do not depend on the
//     number of connections.
//   - Malformed SASL input is an error wrapping ErrInvalid (ErrMalformed), never a panic.
//
// API CONTRACT: the exported signatures below are fixed; smtpd, pop3d and cli code against
// them.
package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/store"
)

// ErrInvalid is returned for a wrong user name or password; callers never learn which.
var ErrInvalid = errors.New("auth: invalid credentials")

// ErrMalformed is returned for a SASL message that does not follow its mechanism's syntax.
// It wraps ErrInvalid; it is not throttled since no password was tried.
var ErrMalformed = fmt.Errorf("%w (malformed SASL message)", ErrInvalid)

// ErrMechanism is returned by NewSASL for a mechanism this package does not implement.
var ErrMechanism = errors.New("auth: unsupported SASL mechanism")

// Lookup is the part of the store auth needs.
type Lookup interface {
	AccountByAddress(ctx context.Context, address string) (store.Account, error)
}

// Config tunes throttling.
type Config struct {
	FailureDelay    time.Duration // first failure delay (default 1s)
	MaxFailureDelay time.Duration // cap (default 15s)
}

// Defaults of Config and of the verified-password cache.
const (
	DefaultFailureDelay    = time.Second
	DefaultMaxFailureDelay = 15 * time.Second

	cacheSize = 10_000
	cacheTTL  = time.Hour
)

// Service verifies logins for every protocol. It is safe for concurrent use.
type Service struct {
	dir      Lookup
	log      *slog.Logger
	cache    *verifiedCache
	throttle *throttle
	hashSem  chan struct{} // bounds concurrent argon2id runs (CPU and 19 MiB each)

	now      func() time.Time
	newNonce func() string // SCRAM server nonce; replaced in tests for RFC vectors

	dummyOnce sync.Once
	dummy     argonParams // checked for unknown users so that they cost the same
	mockKey   [32]byte    // derives SCRAM salts for unknown users
}

// New returns a Service reading accounts from dir.
func New(dir Lookup, cfg Config, log *slog.Logger) *Service {
	if cfg.FailureDelay <= 0 {
		cfg.FailureDelay = DefaultFailureDelay
	}
	if cfg.MaxFailureDelay <= 0 {
		cfg.MaxFailureDelay = DefaultMaxFailureDelay
	}
	cfg.MaxFailureDelay = max(cfg.MaxFailureDelay, cfg.FailureDelay)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		dir:      dir,
		log:      log,
		cache:    newVerifiedCache(cacheSize, cacheTTL),
		throttle: newThrottle(cfg.FailureDelay, cfg.MaxFailureDelay),
		hashSem:  make(chan struct{}, runtime.GOMAXPROCS(0)),
		now:      time.Now,
		newNonce: randomNonce,
	}
	rand.Read(s.mockKey[:])
	return s
}

// CheckPassword verifies username/password (USER/PASS, AUTH PLAIN/LOGIN). On failure it waits
// the throttling delay for this remote IP and username, then returns ErrInvalid.
//
// username is the account's address in any case; it is normalized like address.Key. An
// error that is not ErrInvalid (the store failed, ctx ended) means the check could not be
// made: callers should answer with a temporary failure.
func (s *Service) CheckPassword(ctx context.Context, username, password string, remote netip.Addr) (store.Account, error) {
	login := loginName(username)
	acct, err := s.checkPassword(ctx, login, password)
	if err != nil {
		if errors.Is(err, ErrInvalid) {
			s.failed(ctx, "password", login, remote)
		}
		return store.Account{}, err
	}
	s.succeeded(login)
	return acct, nil
}

func (s *Service) checkPassword(ctx context.Context, login, password string) (store.Account, error) {
	pw, err := normalizePassword(password)
	if err != nil {
		// Independent of the account, so answering without a lookup reveals nothing.
		return store.Account{}, ErrInvalid
	}
	acct, found, err := s.account(ctx, login)
	if err != nil {
		return store.Account{}, err
	}
	var hash argonParams
	if found {
		hash, err = parseArgon2id(acct.Credentials.PasswordHash)
		if err != nil {
			s.log.Error("unusable password hash", "account", acct.Address, "err", err)
			found = false
		}
	}
	if found && s.cache.match(acct.ID, acct.Credentials.PasswordHash, pw, s.now()) {
		return acct, nil
	}
	if !found {
		hash = s.dummyHash()
	}
	// A client that opens several connections at once logs in on each at the same moment:
	// the first to get a hash slot verifies, the others find its result in the cache when
	// their turn comes, instead of each paying argon2id for the same password.
	ok, err := s.verifyHash(ctx, hash, pw, func() bool {
		return found && s.cache.match(acct.ID, acct.Credentials.PasswordHash, pw, s.now())
	})
	if err != nil {
		return store.Account{}, err
	}
	if !ok || !found {
		return store.Account{}, ErrInvalid
	}
	s.cache.add(acct.ID, acct.Credentials.PasswordHash, pw, s.now())
	return acct, nil
}

// account looks up a login name; found is false for an unknown account.
func (s *Service) account(ctx context.Context, login string) (acct store.Account, found bool, err error) {
	acct, err = s.dir.AccountByAddress(ctx, login)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Account{}, false, nil
	case err != nil:
		return store.Account{}, false, fmt.Errorf("auth: looking up %q: %w", login, err)
	}
	return acct, true, nil
}

// verifyHash runs argon2id once a slot is free.
func (s *Service) verifyHash(ctx context.Context, hash argonParams, pw string, cached func() bool) (bool, error) {
	select {
	case s.hashSem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-s.hashSem }()
	if cached() { // verified by another login while this one waited for a slot
		return true, nil
	}
	return hash.verify(pw), nil
}

// dummyHash is a hash of a random password with the current cost, made on first use (it
// costs one argon2id run, which a Service that never sees an unknown user never pays).
func (s *Service) dummyHash() argonParams {
	s.dummyOnce.Do(func() {
		var salt [saltLen]byte
		rand.Read(salt[:])
		p, err := parseArgon2id(hashArgon2id(rand.Text(), salt[:]))
		if err != nil {
			panic("auth: dummy hash: " + err.Error()) // our own format: a bug
		}
		s.dummy = p
	})
	return s.dummy
}

// failed records a failed login and waits the throttling delay (or until ctx is done).
func (s *Service) failed(ctx context.Context, mech, login string, remote netip.Addr) {
	d := s.throttle.fail(s.now(), userKey(login), netKey(remote))
	s.log.Info("authentication failed", "mech", mech, "user", login, "remote", remote, "delay", d)
	sleep(ctx, d)
}

func (s *Service) succeeded(login string) {
	s.throttle.clear(userKey(login))
}

// loginName normalizes a login like the store's account addresses: address.Key form, or
// plain lower case if it does not parse (then it will not be found, at the usual cost).
func loginName(username string) string {
	if a, err := address.Parse(username); err == nil {
		return a.Key()
	}
	return strings.ToLower(username)
}

// Mechanisms lists the SASL mechanisms the service implements, strongest first:
// "SCRAM-SHA-256", "PLAIN", "LOGIN".
func (s *Service) Mechanisms() []string {
	return []string{"SCRAM-SHA-256", "PLAIN", "LOGIN"}
}

// SASL is one server-side SASL exchange (compatible with go-sasl's sasl.Server).
type SASL interface {
	// Next takes the client's response (nil before the first) and returns the next challenge.
	// On failure it returns ErrInvalid after the throttling delay.
	Next(response []byte) (challenge []byte, done bool, err error)
	// Account is the authenticated account once Next returned done with no error.
	Account() store.Account
}

// NewSASL starts an exchange for mech (case-insensitive) or returns an error if unknown.
//
// Each exchange is used by one goroutine. ctx bounds its store lookups and throttling
// delays. Every exchange ends with done=true and no challenge; in particular SCRAM-SHA-256
// sends its server-final message ("v=...") as a challenge with done=false and completes on
// the client's empty response (RFC 4954 §4, RFC 5034 §4), because go-smtp's and our POP3
// AUTH loops drop a challenge returned together with done=true.
func (s *Service) NewSASL(ctx context.Context, mech string, remote netip.Addr) (SASL, error) {
	switch strings.ToUpper(mech) {
	case "SCRAM-SHA-256":
		return &scramServer{s: s, ctx: ctx, remote: remote}, nil
	case "PLAIN":
		return &plainServer{s: s, ctx: ctx, remote: remote}, nil
	case "LOGIN":
		return &loginServer{s: s, ctx: ctx, remote: remote}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrMechanism, mech)
}
