package queue

import (
	"context"
	"encoding/json"
	"errors"

	"petrel/internal/outbound/mx"
	"petrel/internal/store"
)

// STSCache keeps MTA-STS policies in the store (mx.PolicyCache), so that a restart keeps
// them: RFC 8461 §5.1 relies on a cached policy to defeat an attacker who strips the TXT
// record. The policy is stored as JSON, opaque to the store.
type STSCache struct {
	Store interface {
		MTASTSPolicy(ctx context.Context, domain string) ([]byte, error)
		SetMTASTSPolicy(ctx context.Context, domain string, policy []byte) error
	}
}

var _ mx.PolicyCache = STSCache{}

// Get implements mx.PolicyCache. A record that no longer decodes counts as absent.
func (c STSCache) Get(ctx context.Context, domain string) (mx.CachedPolicy, bool, error) {
	b, err := c.Store.MTASTSPolicy(ctx, domain)
	if errors.Is(err, store.ErrNotFound) {
		return mx.CachedPolicy{}, false, nil
	}
	if err != nil {
		return mx.CachedPolicy{}, false, err
	}
	var p mx.CachedPolicy
	if json.Unmarshal(b, &p) != nil {
		return mx.CachedPolicy{}, false, nil
	}
	return p, true, nil
}

// Put implements mx.PolicyCache.
func (c STSCache) Put(ctx context.Context, domain string, p mx.CachedPolicy) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return c.Store.SetMTASTSPolicy(ctx, domain, b)
}
