package store

import (
	"context"
	"fmt"
	"strings"
)

// DKIMKey is one DKIM private key of a domain, published at Selector._domainkey.Domain.
// Private is what the caller keeps for it (a PEM block, or that block sealed): the store
// keeps the bytes as they are given and never reads them.
type DKIMKey struct {
	Domain   string // lower case, no final dot
	Selector string
	Private  []byte
}

// DKIMKeys keeps the DKIM signing keys of the domains, so that every node of one store
// signs with the same keys: a key is made once for the whole store, by whichever node or
// command gets there first. The embedded store keeps them as files of its data directory
// (DATA/dkim/DOMAIN/SELECTOR.pem, as before it had this interface), the PostgreSQL store
// in a table.
type DKIMKeys interface {
	// PutDKIMKey stores k unless its domain already has a key under k.Selector, and returns
	// the key stored under that selector afterwards: k, or the one that was there (another
	// node that made a key at the same moment won). Two callers racing both get the
	// winner's key.
	PutDKIMKey(ctx context.Context, k DKIMKey) (DKIMKey, error)
	// DKIMKeys lists the keys of domain, by selector; none is not an error.
	DKIMKeys(ctx context.Context, domain string) ([]DKIMKey, error)
	// AllDKIMKeys lists every domain's keys, by domain and selector (copies and backups).
	AllDKIMKeys(ctx context.Context) ([]DKIMKey, error)
	// DeleteDKIMKey removes one key (the end of a rotation); ErrNotFound when there is none.
	DeleteDKIMKey(ctx context.Context, domain, selector string) error
}

// CheckDKIMName checks a domain and a selector for a key: the embedded store makes a path
// of them, and a DNS name is made of both (RFC 6376 §3.1: a selector is dot-separated
// labels of letters, digits and hyphens). The domain must be lower case.
func CheckDKIMName(domain, selector string) error {
	if domain == "" || domain != strings.ToLower(domain) || strings.ContainsAny(domain, "/\\\x00") ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return fmt.Errorf("store: invalid DKIM key domain %q", domain)
	}
	return CheckDKIMSelector(selector)
}

// CheckDKIMSelector refuses a selector that is not dot-separated DNS labels of letters,
// digits and hyphens (RFC 6376 §3.1): it becomes part of a DNS name and a file name.
func CheckDKIMSelector(selector string) error {
	if selector == "" || len(selector) > 253 {
		return fmt.Errorf("store: invalid DKIM selector %q", selector)
	}
	for _, label := range strings.Split(selector, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("store: invalid DKIM selector %q", selector)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("store: invalid DKIM selector %q", selector)
			}
		}
	}
	return nil
}
