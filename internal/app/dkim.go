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
