package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"petrel/internal/mail/msgauth"
)

// DKIMKeys is the key directory of a data directory: DATA/dkim/<domain>/<selector>.pem.
// Keys live in files for now, beside the SQLite store; the PostgreSQL store, which serves
// several nodes, will keep them in the store so that every node signs with the same keys.
func DKIMKeys(dataDir string) *msgauth.KeyDir {
	return msgauth.NewKeyDir(DKIMDir(dataDir))
}

// DKIMDir is where DKIMKeys keeps the keys, for messages that tell the operator.
func DKIMDir(dataDir string) string { return filepath.Join(dataDir, "dkim") }

// EnsureDKIMKeys gives domain its first key pair (Ed25519 and RSA-2048, RFC 8463 §6) when it
// has no key yet, and returns what it made (nothing when keys exist). Existing keys are
// never replaced: they may be published and signing mail in transit.
func EnsureDKIMKeys(ctx context.Context, keys *msgauth.KeyDir, domain string, now time.Time) ([]msgauth.Key, error) {
	have, err := keys.SigningKeys(ctx, domain)
	if err != nil {
		return nil, err
	}
	if len(have) > 0 {
		return nil, nil
	}
	return NewDKIMKeys(ctx, keys, domain, now)
}

// ensureDKIMKeys gives every domain of the config file (the development instance's
// example.test among them) its first key pair at start, as `petrel domain add` gives one to
// a domain added later: a domain listed only in the config would otherwise send unsigned
// mail, which fails DMARC at the far side. A domain with a key keeps its keys. The files are
// written before the server drops privileges, which hands the whole data directory (the
// keys with it) to the configured user. Nodes of a PostgreSQL store get a warning instead.
func (a *App) ensureDKIMKeys(ctx context.Context) error {
	keys := DKIMKeys(a.cfg.Data)
	now := time.Now()
	for _, d := range a.cfg.Domains {
		if a.cfg.Store.Backend == "postgres" {
			// Nodes of one PostgreSQL store must sign with the same keys, and each has its
			// own data directory: keys made here at the same time on two nodes would differ
			// under the same selector. The operator makes them once and copies them.
			if have, err := keys.SigningKeys(ctx, d); err == nil && len(have) == 0 {
				a.log.Warn("a configured domain has no DKIM key: make one on one node (`petrel dkim keygen DOMAIN`) and copy DATA/dkim/DOMAIN to every node",
					"domain", d)
			}
			continue
		}
		made, err := EnsureDKIMKeys(ctx, keys, d, now)
		if err != nil {
			return fmt.Errorf("DKIM keys of %s: %w", d, err)
		}
		for _, k := range made {
			a.log.Info("created a DKIM key", "domain", k.Domain, "algorithm", k.Algorithm(), "selector", k.Selector,
				"file", filepath.Join(DKIMDir(a.cfg.Data), k.Domain, k.Selector+".pem"))
			fmt.Fprintf(a.out, "petrel: created DKIM %s key %s for %s (`petrel dns %s` prints its record)\n",
				k.Algorithm(), k.Selector, k.Domain, k.Domain)
		}
	}
	return nil
}

// NewDKIMKeys makes a new Ed25519 and RSA-2048 key for domain, under selectors named by
// msgauth.DefaultSelector, with a suffix (-2, -3, ...) when that selector is taken (a second
// rotation on the same day): a rotation needs new selectors so that the old records can stay
// published while mail signed with the old keys is in transit.
func NewDKIMKeys(ctx context.Context, keys *msgauth.KeyDir, domain string, now time.Time) ([]msgauth.Key, error) {
	have, err := keys.SigningKeys(ctx, domain)
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
		sel := base
		for i := 2; taken[sel]; i++ {
			sel = base + "-" + strconv.Itoa(i)
		}
		k, err := msgauth.GenerateKey(domain, sel, alg, rand.Reader)
		if err != nil {
			return made, fmt.Errorf("DKIM key for %s: %w", domain, err)
		}
		if err := keys.Add(k); err != nil {
			return made, fmt.Errorf("DKIM key for %s: %w", domain, err)
		}
		made = append(made, k)
	}
	return made, nil
}
