package msgauth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"petrel/internal/lib/safefile"
	"petrel/internal/store"
)

// Algorithm is a DKIM key type: the k= tag of the key record (RFC 6376 §3.6.1, RFC 8463 §4).
type Algorithm string

const (
	RSA     Algorithm = "rsa"
	Ed25519 Algorithm = "ed25519"
)

// rsaBits is the size of generated RSA keys: RFC 8301 §3.2 requires at least 1024 and
// recommends 2048; 2048 is also the largest that fits common DNS set-ups without trouble.
const rsaBits = 2048

// Key is one DKIM signing key of a domain, published at Selector._domainkey.Domain.
type Key struct {
	Domain   string
	Selector string
	Signer   crypto.Signer // *rsa.PrivateKey or ed25519.PrivateKey
}

// Algorithm returns the key's type, or "" for a key type DKIM does not know.
func (k Key) Algorithm() Algorithm {
	switch k.Signer.Public().(type) {
	case *rsa.PublicKey:
		return RSA
	case ed25519.PublicKey:
		return Ed25519
	}
	return ""
}

// RecordName is the DNS name of the key record (RFC 6376 §3.6.2.1), without final dot.
func (k Key) RecordName() string {
	return k.Selector + "._domainkey." + k.Domain
}

// Record is the text of the key's DNS TXT record: "v=DKIM1; k=rsa; p=..." (RFC 6376
// §3.6.1). An RSA key is published as SubjectPublicKeyInfo, as opendkim-genkey and most
// signers do (RFC 6376 erratum 3017 lets verifiers take both that and RSAPublicKey); an
// Ed25519 key as its 32 raw bytes (RFC 8463 §4.2).
func (k Key) Record() (string, error) {
	var p []byte
	switch pub := k.Signer.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", err
		}
		p = der
	case ed25519.PublicKey:
		p = pub
	default:
		return "", fmt.Errorf("msgauth: unsupported DKIM key type %T", pub)
	}
	return "v=DKIM1; k=" + string(k.Algorithm()) + "; p=" + base64.StdEncoding.EncodeToString(p), nil
}

// SplitTXT cuts a record text into the character-strings of one TXT record, each at most
// 255 bytes (RFC 1035 §3.3.14); resolvers join them back (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
// An RSA-2048 key record does not fit one string.
func SplitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// ZoneTXT is the record in zone-file form, ready to paste:
// `sel._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; p=MIIB..." "..." )`.
func ZoneTXT(name, text string) string {
	parts := SplitTXT(text)
	var b strings.Builder
	b.WriteString(name + ". IN TXT (")
	for _, p := range parts {
		b.WriteString(` "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`)
	}
	b.WriteString(" )")
	return b.String()
}

// GenerateKey makes a new key: RSA-2048 or Ed25519. rand is the entropy source
// (crypto/rand.Reader outside tests).
func GenerateKey(domain, selector string, alg Algorithm, rand io.Reader) (Key, error) {
	k := Key{Domain: strings.ToLower(domain), Selector: selector}
	if err := checkSelector(selector); err != nil {
		return Key{}, err
	}
	switch alg {
	case RSA:
		priv, err := rsa.GenerateKey(rand, rsaBits)
		if err != nil {
			return Key{}, err
		}
		k.Signer = priv
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand)
		if err != nil {
			return Key{}, err
		}
		k.Signer = priv
	default:
		return Key{}, fmt.Errorf("msgauth: unknown DKIM key algorithm %q", alg)
	}
	return k, nil
}

// DefaultSelector names a key made at t: the algorithm and the date, so that a rotation
// gets a new selector and the old record can stay published while mail signed with it is
// in transit (RFC 6376 §3.1 on selectors and key rotation).
func DefaultSelector(alg Algorithm, t time.Time) string {
	short := "r"
	if alg == Ed25519 {
		short = "e"
	}
	return short + t.UTC().Format("20060102")
}

// checkSelector refuses selectors that are not a sequence of DNS labels of letters,
// digits and hyphens (RFC 6376 §3.1): the selector becomes part of a DNS name and, in the
// store, of a file name (one rule for both: store.CheckDKIMSelector).
func checkSelector(s string) error {
	if store.CheckDKIMSelector(s) != nil {
		return fmt.Errorf("msgauth: invalid DKIM selector %q", s)
	}
	return nil
}

// MarshalPEM encodes the private key as PKCS #8 in a PEM block, the form the store or a
// key file keeps.
func (k Key) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Signer)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads a private key written by MarshalPEM (PKCS #8), or an RSA key in PKCS #1
// ("RSA PRIVATE KEY", as opendkim-genkey writes), for domain and selector.
func ParseKey(domain, selector string, pemBytes []byte) (Key, error) {
	if err := checkSelector(selector); err != nil {
		return Key{}, err
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return Key{}, errors.New("msgauth: no PEM block in DKIM key")
	}
	var priv any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return Key{}, fmt.Errorf("msgauth: unexpected PEM block %q in DKIM key", block.Type)
	}
	if err != nil {
		return Key{}, fmt.Errorf("msgauth: parsing DKIM key: %w", err)
	}
	k := Key{Domain: strings.ToLower(domain), Selector: selector}
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		if p.N.BitLen() < 1024 {
			// RFC 8301 §3.2: verifiers refuse keys under 1024 bits.
			return Key{}, fmt.Errorf("msgauth: RSA key of %d bits is too short for DKIM", p.N.BitLen())
		}
		k.Signer = p
	case ed25519.PrivateKey:
		k.Signer = p
	default:
		return Key{}, fmt.Errorf("msgauth: unsupported DKIM key type %T", priv)
	}
	return k, nil
}

// KeySource gives the keys a domain signs with: none (the domain does not sign), one, or
// one RSA and one Ed25519 key (RFC 8463 §6: sign with both while Ed25519 is not understood
// everywhere). Implementations must be safe for concurrent use.
type KeySource interface {
	SigningKeys(ctx context.Context, domain string) ([]Key, error)
}

// StaticKeys is a KeySource held in memory, by lower-case domain: for tests, and for a
// composition root that loads keys from the store once.
type StaticKeys map[string][]Key

// SigningKeys implements KeySource.
func (s StaticKeys) SigningKeys(_ context.Context, domain string) ([]Key, error) {
	return s[strings.ToLower(domain)], nil
}

// KeyDir is a KeySource on disk: DIR/<domain>/<selector>.pem, one PKCS #8 PEM file per key,
// mode 0600. Every key file of a domain signs (an RSA and an Ed25519 key: two signatures).
// Rotation: Add a key with a new selector, publish its record, wait for it to propagate,
// then remove the old key's file; during the overlap both sign, and a verifier that cannot
// find the new record yet still verifies the old signature (RFC 6376 §6.1: a message passes
// when any signature does). Parsed keys are cached and re-read when a file changes, and a
// domain's list of keys is read again once it is keyDirTTL old, so a key added or removed by
// the CLI while the server runs is used within a second (reading the directory and every
// file's status for each message was 3% of relaying one).
type KeyDir struct {
	dir string

	mu    sync.Mutex
	cache map[string]cachedKey  // by file path
	lists map[string]cachedList // by domain directory
	now   func() time.Time      // nil: time.Now
}

// keyDirTTL is how long KeyDir reuses a domain's list of keys.
const keyDirTTL = time.Second

type cachedList struct {
	keys []Key
	read time.Time
}

type cachedKey struct {
	mod  time.Time
	size int64
	key  Key
}

// NewKeyDir returns the key directory at dir; it need not exist yet.
func NewKeyDir(dir string) *KeyDir {
	return &KeyDir{dir: dir, cache: map[string]cachedKey{}, lists: map[string]cachedList{}}
}

// domainDir is the directory of domain's keys. Domains are lower-cased, and a name that
// could leave the directory is refused.
func (d *KeyDir) domainDir(domain string) (string, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" || strings.ContainsAny(domain, `/\`) || strings.HasPrefix(domain, ".") {
		return "", fmt.Errorf("msgauth: invalid domain %q", domain)
	}
	return filepath.Join(d.dir, domain), nil
}

// Add writes k as DIR/<domain>/<selector>.pem with mode 0600, crash-safely. An existing
// key with the same selector is not replaced: rotating means a new selector.
func (d *KeyDir) Add(k Key) error {
	dir, err := d.domainDir(k.Domain)
	if err != nil {
		return err
	}
	if err := checkSelector(k.Selector); err != nil {
		return err
	}
	data, err := k.MarshalPEM()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, k.Selector+".pem")
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("msgauth: DKIM key %s exists; use a new selector", path)
	}
	if err := safefile.WriteAtomic(path, data, 0o600); err != nil {
		return err
	}
	return safefile.SyncDir(d.dir)
}

// SigningKeys implements KeySource: every key of domain, sorted by selector.
func (d *KeyDir) SigningKeys(_ context.Context, domain string) ([]Key, error) {
	dir, err := d.domainDir(domain)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if d.now != nil {
		now = d.now()
	}
	d.mu.Lock()
	l, ok := d.lists[dir]
	d.mu.Unlock()
	if ok && now.Sub(l.read) < keyDirTTL && !now.Before(l.read) {
		return slices.Clone(l.keys), nil
	}
	keys, err := d.readKeys(dir)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.lists[dir] = cachedList{keys: slices.Clone(keys), read: now}
	d.mu.Unlock()
	return keys, nil
}

// readKeys reads the keys of a domain directory, sorted by selector.
func (d *KeyDir) readKeys(dir string) ([]Key, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var keys []Key
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".pem") {
			continue
		}
		k, err := d.load(filepath.Join(dir, name), strings.ToLower(filepath.Base(dir)), strings.TrimSuffix(name, ".pem"))
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Selector < keys[j].Selector })
	return keys, nil
}

// load returns the key in path, from the cache while the file is unchanged.
func (d *KeyDir) load(path, domain, selector string) (Key, error) {
	info, err := os.Stat(path)
	if err != nil {
		return Key{}, err
	}
	d.mu.Lock()
	c, ok := d.cache[path]
	d.mu.Unlock()
	if ok && c.mod.Equal(info.ModTime()) && c.size == info.Size() {
		return c.key, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, err
	}
	k, err := ParseKey(domain, selector, data)
	if err != nil {
		return Key{}, fmt.Errorf("%s: %w", path, err)
	}
	d.mu.Lock()
	d.cache[path] = cachedKey{mod: info.ModTime(), size: info.Size(), key: k}
	d.mu.Unlock()
	return k, nil
}
