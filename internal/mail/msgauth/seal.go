package msgauth

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"petrel/internal/mail/arc"
)

// Sealer adds an ARC set (RFC 8617 §5.1) to mail we forward: an alias's copy to another
// server, a Sieve redirect. The forward breaks SPF (the envelope is ours, by SRS) and may
// break DKIM; the set tells the next receiver what we saw when the message arrived, under
// our signature. It signs with the forwarding domain's RSA key: RFC 8617 §4.1.3 defines
// rsa-sha256 only, and receivers (dkimpy, Gmail) verify nothing else.
type Sealer struct {
	Keys       KeySource
	AuthServID string // our host name, the authserv-id of the ARC-Authentication-Results
	// MaxHeaderBytes bounds the header section read; 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
}

// Seal reads the message in r (exactly as it will leave, CRLF line ends) and returns the
// ARC set to prepend: ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results, each
// ending in CRLF. results are our inbound checks' results (Verdict.Results), chain the
// validation of the chain the message arrived with (Verdict.ARC). "" when domain has no RSA
// key or the chain failed (RFC 8617 §5.1.1: nothing to add a set to).
func (s *Sealer) Seal(ctx context.Context, domain string, r io.Reader, results string, chain arc.Result) (string, error) {
	keys, err := s.Keys.SigningKeys(ctx, domain)
	if err != nil {
		return "", fmt.Errorf("msgauth: DKIM keys of %s: %w", domain, err)
	}
	var key *Key
	for i := range keys {
		if keys[i].Algorithm() == RSA {
			key = &keys[i]
			break
		}
	}
	if key == nil {
		return "", nil
	}
	br := bufio.NewReader(r)
	hdr, err := readHeader(br, headerLimit(s.MaxHeaderBytes))
	if err != nil {
		return "", fmt.Errorf("msgauth: ARC sealing: %w", err)
	}
	signer := &arc.Signer{Domain: key.Domain, Selector: key.Selector, Key: key.Signer}
	set, err := signer.Seal(hdr, br, s.AuthServID, results, chain)
	if err != nil {
		return "", fmt.Errorf("msgauth: ARC sealing: %w", err)
	}
	return set, nil
}

// Results is the verdict's results without the field name and authserv-id: the
// "spf=...; dkim=...; dmarc=...; arc=..." part of AuthResults, folded as there, for an
// ARC-Authentication-Results field (RFC 8617 §4.1.1) of a forwarded copy.
func (v *Verdict) Results() string {
	_, rest, ok := strings.Cut(v.AuthResults, ";")
	if !ok {
		return ""
	}
	return strings.TrimSpace(rest)
}
