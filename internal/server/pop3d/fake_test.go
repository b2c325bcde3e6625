package pop3d

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/mail/auth"
	"petrel/internal/store"
)

// fakeStore is an in-memory Store for tests.
type fakeStore struct {
	mu        sync.Mutex
	nextID    int64
	accounts  map[int64]store.Account
	mailboxes map[int64]*fakeMailbox
	blobs     map[int64][]byte
	locks     map[int64]bool

	failUpdate error                                     // returned by Expunge, SetFlags and Move
	openBlob   func(blobID int64, r io.Reader) io.Reader // wraps blob readers when set
	panicOn    int64                                     // Messages panics for this mailbox ID
}

type fakeMailbox struct {
	store.Mailbox
	msgs []store.Message
}

var _ Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{
		accounts:  make(map[int64]store.Account),
		mailboxes: make(map[int64]*fakeMailbox),
		blobs:     make(map[int64][]byte),
		locks:     make(map[int64]bool),
	}
}

func (f *fakeStore) id() int64 { f.nextID++; return f.nextID }

// addAccount creates an account with the default mailboxes.
func (f *fakeStore) addAccount(address string, policy store.POP3DeletePolicy) store.Account {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := store.Account{ID: f.id(), Address: address, POP3Delete: policy}
	f.accounts[a.ID] = a
	for _, name := range store.DefaultMailboxes {
		f.createLocked(a.ID, name)
	}
	return a
}

func (f *fakeStore) createLocked(accountID int64, name string) *fakeMailbox {
	mb := &fakeMailbox{Mailbox: store.Mailbox{
		ID: f.id(), AccountID: accountID, Name: name, UIDValidity: uint32(1000 + f.nextID), UIDNext: 1,
	}}
	f.mailboxes[mb.ID] = mb
	return mb
}

func (f *fakeStore) findLocked(accountID int64, name string) *fakeMailbox {
	for _, mb := range f.mailboxes {
		if mb.AccountID == accountID && mb.Name == name {
			return mb
		}
	}
	return nil
}

// deliver appends a message to a mailbox of the account.
func (f *fakeStore) deliver(accountID int64, mailbox, body string) store.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	mb := f.findLocked(accountID, mailbox)
	blob := f.id()
	f.blobs[blob] = []byte(body)
	m := store.Message{ID: f.id(), MailboxID: mb.ID, UID: mb.UIDNext, BlobID: blob, Size: int64(len(body))}
	mb.UIDNext++
	mb.msgs = append(mb.msgs, m)
	mb.Messages = len(mb.msgs)
	return m
}

// contents returns the bodies and flags of a mailbox, in UID order, for assertions.
func (f *fakeStore) contents(accountID int64, mailbox string) (bodies []string, flags [][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.findLocked(accountID, mailbox).msgs {
		bodies = append(bodies, string(f.blobs[m.BlobID]))
		flags = append(flags, m.Flags)
	}
	return bodies, flags
}

func (f *fakeStore) locked(accountID int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.locks[accountID]
}

func (f *fakeStore) AccountByID(ctx context.Context, id int64) (store.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.accounts[id]
	if !ok {
		return store.Account{}, store.ErrNotFound
	}
	return a, nil
}

func (f *fakeStore) accountByAddress(address string) (store.Account, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.accounts {
		if a.Address == address {
			return a, true
		}
	}
	return store.Account{}, false
}

func (f *fakeStore) Mailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mb := f.findLocked(accountID, name)
	if mb == nil {
		return store.Mailbox{}, store.ErrNotFound
	}
	return mb.Mailbox, nil
}

func (f *fakeStore) CreateMailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.findLocked(accountID, name) != nil {
		return store.Mailbox{}, store.ErrExists
	}
	return f.createLocked(accountID, name).Mailbox, nil
}

func (f *fakeStore) Messages(ctx context.Context, mailboxID int64, _ store.Filter) ([]store.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mailboxID == f.panicOn {
		panic("fake store: boom")
	}
	mb, ok := f.mailboxes[mailboxID]
	if !ok {
		return nil, store.ErrNotFound
	}
	return slices.Clone(mb.msgs), nil
}

func (f *fakeStore) OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error) {
	f.mu.Lock()
	b, ok := f.blobs[blobID]
	wrap := f.openBlob
	f.mu.Unlock()
	if !ok {
		return nil, store.ErrNotFound
	}
	var r io.Reader = bytes.NewReader(b)
	if wrap != nil {
		r = wrap(blobID, r)
	}
	return io.NopCloser(r), nil
}

func (f *fakeStore) SetFlags(ctx context.Context, mailboxID int64, uids []uint32, c store.FlagChange) (store.FlagsUpdated, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failUpdate != nil {
		return store.FlagsUpdated{}, f.failUpdate
	}
	mb := f.mailboxes[mailboxID]
	for i, m := range mb.msgs {
		if slices.Contains(uids, m.UID) {
			for _, fl := range c.Flags {
				if c.Mode == store.FlagsAdd && !slices.Contains(m.Flags, fl) {
					mb.msgs[i].Flags = append(slices.Clone(m.Flags), fl)
				}
			}
		}
	}
	return store.FlagsUpdated{}, nil
}

func (f *fakeStore) Expunge(ctx context.Context, mailboxID int64, uids []uint32) (store.Expunged, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failUpdate != nil {
		return store.Expunged{}, f.failUpdate
	}
	mb := f.mailboxes[mailboxID]
	mb.msgs = slices.DeleteFunc(mb.msgs, func(m store.Message) bool { return slices.Contains(uids, m.UID) })
	mb.Messages = len(mb.msgs)
	return store.Expunged{UIDs: uids}, nil
}

func (f *fakeStore) Move(ctx context.Context, from int64, uids []uint32, to int64) (store.Copied, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failUpdate != nil {
		return store.Copied{}, f.failUpdate
	}
	src, dst := f.mailboxes[from], f.mailboxes[to]
	if dst == nil || dst.AccountID != src.AccountID {
		return store.Copied{}, store.ErrNotFound
	}
	var keep []store.Message
	for _, m := range src.msgs {
		if !slices.Contains(uids, m.UID) {
			keep = append(keep, m)
			continue
		}
		m.MailboxID, m.UID = dst.ID, dst.UIDNext
		dst.UIDNext++
		dst.msgs = append(dst.msgs, m)
	}
	src.msgs = keep
	src.Messages, dst.Messages = len(src.msgs), len(dst.msgs)
	return store.Copied{}, nil
}

func (f *fakeStore) LockMaildrop(ctx context.Context, accountID int64) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locks[accountID] {
		return nil, store.ErrLocked
	}
	f.locks[accountID] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.locks, accountID)
			f.mu.Unlock()
		})
	}, nil
}

// fakeAuth checks passwords against a map and speaks two SASL mechanisms: PLAIN (RFC 4616)
// and X-FINAL, a test mechanism that sends data together with its success, to exercise the
// RFC 5034 §4 rule for it.
type fakeAuth struct {
	st        *fakeStore
	passwords map[string]string // address → password

	mu       sync.Mutex
	attempts []string // "user:password" of every check, to assert what was tried
}

var _ Authenticator = (*fakeAuth)(nil)

func (a *fakeAuth) check(username, password string) (store.Account, error) {
	a.mu.Lock()
	a.attempts = append(a.attempts, username+":"+password)
	a.mu.Unlock()
	want, ok := a.passwords[username]
	if !ok || want != password {
		return store.Account{}, auth.ErrInvalid
	}
	acct, ok := a.st.accountByAddress(username)
	if !ok {
		return store.Account{}, auth.ErrInvalid
	}
	return acct, nil
}

func (a *fakeAuth) CheckPassword(ctx context.Context, username, password string, remote netip.Addr) (store.Account, error) {
	return a.check(username, password)
}

func (a *fakeAuth) Mechanisms() []string { return []string{"PLAIN", "X-FINAL"} }

func (a *fakeAuth) NewSASL(ctx context.Context, mech string, remote netip.Addr) (auth.SASL, error) {
	switch strings.ToUpper(mech) {
	case "PLAIN", "X-FINAL":
		return &fakeSASL{a: a, final: strings.EqualFold(mech, "X-FINAL")}, nil
	}
	return nil, fmt.Errorf("unknown mechanism %q", mech)
}

type fakeSASL struct {
	a     *fakeAuth
	final bool
	step  int
	acct  store.Account
}

func (x *fakeSASL) Next(resp []byte) ([]byte, bool, error) {
	x.step++
	if x.final && x.step == 3 {
		return nil, true, nil // the empty answer to the final data
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	// authzid NUL authcid NUL passwd
	parts := strings.Split(string(resp), "\x00")
	if len(parts) != 3 {
		return nil, false, auth.ErrInvalid
	}
	acct, err := x.a.check(parts[1], parts[2])
	if err != nil {
		return nil, false, err
	}
	x.acct = acct
	if x.final {
		return []byte("v=final"), true, nil
	}
	return nil, true, nil
}

func (x *fakeSASL) Account() store.Account { return x.acct }

// testTLSConfig returns a server config with a fresh self-signed certificate for localhost.
func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
