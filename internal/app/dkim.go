package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"petrel/internal/config"
	"petrel/internal/mail/msgauth"
	"petrel/internal/pull"
	"petrel/internal/store"
)

// DKIM keys are kept by the store (store.DKIMKeys), so that every node of a PostgreSQL
// store signs with the same keys: a domain's keys are made once, by whichever node or
// command gets there first, and the others read them. The embedded store keeps them as
// files of the data directory (DATA/dkim/DOMAIN/SELECTOR.pem, PEM, mode 0600), as before;
// the PostgreSQL store keeps them in a table, sealed with the pull key file
// ([pull] key_file, AES-256-GCM, pull.Sealer), as it keeps the pull sources' passwords: a
// dump or a copy of the database alone does not give away the keys that sign for the
// domains. Every node then needs the same key file, as it needs the same config.

// DKIMStore gives the DKIM keys of a store as msgauth keys: the signer's KeySource, and what
// the commands make, list and remove.
type DKIMStore struct {
	keys store.DKIMKeys
	box  *pull.Sealer // nil: the store keeps the PEM as it is (the embedded store's files)
	seal string       // the key file of box, for messages
	// noBox is why there is no box on a store that seals (its key file is missing): an
	// error only once a key must be opened or sealed, so that reading a store without
	// keys (petrel dns, check, a copy) needs no key file.
	noBox error
	what  string // where the keys are, for messages

	mu     sync.Mutex
	lists  map[string]cachedKeys  // by domain
	parsed map[string]msgauth.Key // by domain/selector, valid while raw is the same
	raw    map[string][]byte      // the stored bytes parsed into parsed
	now    func() time.Time       // nil: time.Now (tests)
}

type cachedKeys struct {
	keys []msgauth.Key
	read time.Time
}

// dkimListTTL is how long a domain's list of keys is reused by the signer: a key made,
// rotated or removed by a command (on any node) is used within this time, and a message
// costs no read of the store.
const dkimListTTL = time.Second

// OpenDKIMStore gives the DKIM keys of st, the store cfg names. On PostgreSQL it loads the
// sealing key ([pull] key_file); create makes that file when it is missing (a command or
// a start that makes keys), else a missing file is an error that names it.
func OpenDKIMStore(cfg *config.Config, st store.Store, create bool) (*DKIMStore, error) {
	return openDKIMStore(cfg, st, IsPostgres(cfg), create)
}

// openDKIMStore is OpenDKIMStore for a store that is a PostgreSQL store when pg, whichever
// store cfg names (the other side of a copy).
func openDKIMStore(cfg *config.Config, st store.Store, pg, create bool) (*DKIMStore, error) {
	keys, ok := st.(store.DKIMKeys)
	if !ok {
		return nil, errors.New("this store keeps no DKIM keys")
	}
	d := newDKIMStore(keys)
	d.what = DKIMDir(cfg.Data)
	if pg {
		box, err := LoadSealKey(cfg, create)
		if err != nil {
			err = fmt.Errorf("DKIM keys are sealed in the PostgreSQL store with the key file %s, which every node needs: %w",
				cfg.PullKeyFile(), err)
			if create || !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			d.noBox = err
		}
		d.box, d.seal = box, cfg.PullKeyFile()
		d.what = "the PostgreSQL store (sealed with " + cfg.PullKeyFile() + ")"
	}
	return d, nil
}

func newDKIMStore(keys store.DKIMKeys) *DKIMStore {
	return &DKIMStore{keys: keys, lists: map[string]cachedKeys{}, parsed: map[string]msgauth.Key{}, raw: map[string][]byte{}}
}

// Where says where the keys are kept, for messages to the operator.
func (d *DKIMStore) Where() string { return d.what }

// DKIMKeys reads the key files of a data directory (DATA/dkim/DOMAIN/SELECTOR.pem) directly:
// the embedded store's keys, or the files a PostgreSQL node kept before the store did.
func DKIMKeys(dataDir string) *msgauth.KeyDir {
	return msgauth.NewKeyDir(DKIMDir(dataDir))
}

// DKIMDir is where the embedded store keeps the keys: DATA/dkim.
func DKIMDir(dataDir string) string { return filepath.Join(dataDir, "dkim") }

// dkimBinding is the additional data of a sealed DKIM key: its domain and selector, so that
// a sealed key moved to another row does not open there.
func dkimBinding(domain, selector string) []byte {
	return fmt.Appendf(nil, "petrel dkim v1\x00%s\x00%s", domain, selector)
}

// SigningKeys implements msgauth.KeySource: the keys of domain, by selector, read from the
// store at most once per dkimListTTL.
func (d *DKIMStore) SigningKeys(ctx context.Context, domain string) ([]msgauth.Key, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := time.Now()
	if d.now != nil {
		now = d.now()
	}
	d.mu.Lock()
	l, ok := d.lists[domain]
	d.mu.Unlock()
	if ok && now.Sub(l.read) < dkimListTTL && !now.Before(l.read) {
		return slices.Clone(l.keys), nil
	}
	keys, err := d.Keys(ctx, domain)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.lists[domain] = cachedKeys{keys: slices.Clone(keys), read: now}
	d.mu.Unlock()
	return keys, nil
}

// Keys reads the keys of domain from the store, by selector (no list cache: what commands
// show).
func (d *DKIMStore) Keys(ctx context.Context, domain string) ([]msgauth.Key, error) {
	stored, err := d.keys.DKIMKeys(ctx, strings.ToLower(strings.TrimSuffix(domain, ".")))
	if err != nil {
		return nil, err
	}
	keys := make([]msgauth.Key, 0, len(stored))
	for _, s := range stored {
		k, err := d.parse(s)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// parse opens and parses a stored key, reusing the last parse of the same bytes (an RSA
// key's parse is far dearer than the read).
func (d *DKIMStore) parse(s store.DKIMKey) (msgauth.Key, error) {
	id := s.Domain + "/" + s.Selector
	d.mu.Lock()
	k, ok := d.parsed[id]
	same := ok && bytes.Equal(d.raw[id], s.Private)
	d.mu.Unlock()
	if same {
		return k, nil
	}
	pemBytes, err := d.open(s)
	if err != nil {
		return msgauth.Key{}, err
	}
	k, err = msgauth.ParseKey(s.Domain, s.Selector, pemBytes)
	if err != nil {
		return msgauth.Key{}, fmt.Errorf("DKIM key %s of %s: %w", s.Selector, s.Domain, err)
	}
	d.mu.Lock()
	d.parsed[id], d.raw[id] = k, s.Private
	d.mu.Unlock()
	return k, nil
}

// open returns the PEM of a stored key.
func (d *DKIMStore) open(s store.DKIMKey) ([]byte, error) {
	if d.noBox != nil {
		return nil, d.noBox
	}
	if d.box == nil {
		return s.Private, nil
	}
	b, err := d.box.OpenData(s.Private, dkimBinding(s.Domain, s.Selector))
	if err != nil {
		return nil, fmt.Errorf("DKIM key %s of %s does not open with the key file %s: every node needs the same [pull] key_file (copy it from the node that made the key): %w",
			s.Selector, s.Domain, d.seal, err)
	}
	return b, nil
}

// Add stores k unless its domain has a key under k.Selector, and returns the key stored
// there afterwards and whether it is k (false: another node or command was first).
func (d *DKIMStore) Add(ctx context.Context, k msgauth.Key) (msgauth.Key, bool, error) {
	pemBytes, err := k.MarshalPEM()
	if err != nil {
		return msgauth.Key{}, false, err
	}
	return d.put(ctx, store.DKIMKey{Domain: k.Domain, Selector: k.Selector, Private: pemBytes})
}

// put stores a key given as PEM (sealing it on PostgreSQL) unless the selector is taken,
// and returns the key stored under the selector and whether it is this one.
func (d *DKIMStore) put(ctx context.Context, k store.DKIMKey) (msgauth.Key, bool, error) {
	pemBytes := k.Private
	if d.noBox != nil {
		return msgauth.Key{}, false, d.noBox
	}
	if d.box != nil {
		k.Private = d.box.SealData(pemBytes, dkimBinding(k.Domain, k.Selector))
	}
	got, err := d.keys.PutDKIMKey(ctx, k)
	if err != nil {
		return msgauth.Key{}, false, err
	}
	key, err := d.parse(got)
	if err != nil {
		return msgauth.Key{}, false, err
	}
	d.forget(k.Domain)
	ours := bytes.Equal(got.Private, k.Private)
	return key, ours, nil
}

// Delete removes one key (the end of a rotation).
func (d *DKIMStore) Delete(ctx context.Context, domain, selector string) error {
	err := d.keys.DeleteDKIMKey(ctx, domain, selector)
	d.forget(domain)
	return err
}

// forget drops the cached list of domain, so that this process uses a change at once.
func (d *DKIMStore) forget(domain string) {
	d.mu.Lock()
	delete(d.lists, domain)
	d.mu.Unlock()
}

// CopyDKIMKeys copies every key of from into to (the keys a store copy or a backup
// carries), opening them with from's key and sealing them with to's; a key whose selector
// to already has is left as it is there. It returns how many it wrote.
func CopyDKIMKeys(ctx context.Context, from, to *DKIMStore) (int, error) {
	all, err := from.keys.AllDKIMKeys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range all {
		pemBytes, err := from.open(s)
		if err != nil {
			return n, err
		}
		if _, ours, err := to.put(ctx, store.DKIMKey{Domain: s.Domain, Selector: s.Selector, Private: pemBytes}); err != nil {
			return n, err
		} else if ours {
			n++
		}
	}
	return n, nil
}

// EnsureDKIMKeys gives domain its first key pair (Ed25519 and RSA-2048, RFC 8463 §6) when it
// has no key yet, and returns what it made (nothing when keys exist, or when another node
// made them at the same moment: the store keeps the first of each selector, and every
// node signs with that). Existing keys are never replaced: they may be published and
// signing mail in transit.
func EnsureDKIMKeys(ctx context.Context, keys *DKIMStore, domain string, now time.Time) ([]msgauth.Key, error) {
	have, err := keys.Keys(ctx, domain)
	if err != nil {
		return nil, err
	}
	if len(have) > 0 {
		return nil, nil
	}
	return makeDKIMKeys(ctx, keys, domain, now, false)
}

// ensureDKIMKeys gives every domain of the config file (the development instance's
// example.test among them) its first key pair at start, as `petrel domain add` gives one to
// a domain added later: a domain listed only in the config would otherwise send unsigned
// mail, which fails DMARC at the far side. A domain with a key keeps its keys. On the
// embedded store the files are written before the server drops privileges, which hands
// the whole data directory (the keys with it) to the configured user. Nodes of a PostgreSQL
// store starting together make the same selectors and the store keeps one key of each, so
// they all sign with the same keys; a node's own DATA/dkim files from before (keys copied
// by hand to every node) are taken into the store first, so their published records stay
// valid.
func (a *App) ensureDKIMKeys(ctx context.Context) error {
	keys, err := OpenDKIMStore(a.cfg, a.store, true)
	if err != nil {
		return err
	}
	a.dkim = keys
	now := time.Now()
	for _, d := range a.cfg.Domains {
		d = strings.ToLower(d)
		if IsPostgres(a.cfg) {
			if err := a.adoptKeyFiles(ctx, keys, d); err != nil {
				return fmt.Errorf("DKIM keys of %s: %w", d, err)
			}
		}
		made, err := EnsureDKIMKeys(ctx, keys, d, now)
		if err != nil {
			return fmt.Errorf("DKIM keys of %s: %w", d, err)
		}
		for _, k := range made {
			a.log.Info("created a DKIM key", "domain", k.Domain, "algorithm", k.Algorithm(), "selector", k.Selector,
				"in", keys.Where())
			fmt.Fprintf(a.out, "petrel: created DKIM %s key %s for %s (`petrel dns %s` prints its record)\n",
				k.Algorithm(), k.Selector, k.Domain, k.Domain)
		}
	}
	return nil
}

// adoptKeyFiles takes the key files DATA/dkim/DOMAIN/*.pem of a PostgreSQL node into the
// store when the store has no key for domain: before the store kept them, the operator
// made them on one node and copied them to every node.
func (a *App) adoptKeyFiles(ctx context.Context, keys *DKIMStore, domain string) error {
	if have, err := keys.Keys(ctx, domain); err != nil || len(have) > 0 {
		return err
	}
	files, err := DKIMKeys(a.cfg.Data).SigningKeys(ctx, domain)
	if err != nil {
		return err
	}
	for _, k := range files {
		if _, ours, err := keys.Add(ctx, k); err != nil {
			return err
		} else if ours {
			a.log.Info("took a DKIM key file into the store", "domain", domain, "selector", k.Selector)
		}
	}
	return nil
}

// NewDKIMKeys makes a new Ed25519 and RSA-2048 key for domain, under selectors named by
// msgauth.DefaultSelector, with a suffix (-2, -3, ...) when that selector is taken (a second
// rotation on the same day): a rotation needs new selectors so that the old records can stay
// published while mail signed with the old keys is in transit.
func NewDKIMKeys(ctx context.Context, keys *DKIMStore, domain string, now time.Time) ([]msgauth.Key, error) {
	return makeDKIMKeys(ctx, keys, domain, now, true)
}

// makeDKIMKeys makes an Ed25519 and an RSA key for domain. rotate: each under a selector
// nobody has taken, trying the next suffix when another command took it meanwhile;
// otherwise under the day's default selectors, where a key that another node put there
// first stands for ours (the nodes starting together agree on it).
func makeDKIMKeys(ctx context.Context, keys *DKIMStore, domain string, now time.Time, rotate bool) ([]msgauth.Key, error) {
	have, err := keys.Keys(ctx, domain)
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, k := range have {
		taken[k.Selector] = true
	}
	var made []msgauth.Key
	for _, alg := range []msgauth.Algorithm{msgauth.Ed25519, msgauth.RSA} {
		base := msgauth.DefaultSelector(alg, now)
		for i := 1; ; i++ {
			sel := base
			if i > 1 {
				sel = base + "-" + strconv.Itoa(i)
			}
			if taken[sel] {
				continue
			}
			k, err := msgauth.GenerateKey(domain, sel, alg, rand.Reader)
			if err != nil {
				return made, fmt.Errorf("DKIM key for %s: %w", domain, err)
			}
			got, ours, err := keys.Add(ctx, k)
			if err != nil {
				return made, fmt.Errorf("DKIM key for %s: %w", domain, err)
			}
			if ours {
				made = append(made, got)
			} else if rotate {
				taken[sel] = true
				continue
			}
			break
		}
	}
	return made, nil
}

// LoadSealKey loads the key that seals the secrets the store keeps ([pull] key_file: the
// pull sources' passwords, and the DKIM keys on PostgreSQL). create makes it when missing,
// readable by the server (ShareKeyFile).
func LoadSealKey(cfg *config.Config, create bool) (*pull.Sealer, error) {
	sealer, err := pull.LoadKey(cfg.PullKeyFile(), create)
	if err != nil {
		return nil, err
	}
	if create {
		if err := ShareKeyFile(cfg.PullKeyFile(), cfg.Data); err != nil {
			return nil, err
		}
	}
	return sealer, nil
}

// ShareKeyFile lets the server read a key file that root made: when root runs the command
// and the data directory belongs to another user (the one the server runs as), the key
// stays root's and becomes readable by that user's group (0640), like the TLS key of
// quickstart.
func ShareKeyFile(keyFile, data string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(data)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a PostgreSQL node that keeps nothing of its own yet
	} else if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	if err := os.Chown(keyFile, 0, int(st.Gid)); err != nil {
		return err
	}
	return os.Chmod(keyFile, 0o640)
}
