package msgauth

import (
	"context"
	"errors"
	"net"
)

// Resolver is the DNS the checks need: TXT for SPF, DKIM keys and DMARC policies, and the
// address, MX and PTR look-ups SPF mechanisms make. *net.Resolver satisfies it, and so does
// any resolver that follows its error convention:
//
//   - a name or record that does not exist is a *net.DNSError with IsNotFound set;
//   - a failure that may pass (timeout, SERVFAIL, no answer) is a *net.DNSError with
//     IsTemporary or IsTimeout set.
//
// Any other error is taken as temporary (see checkedResolver): a broken resolver must
// lead to temperror and a retry, never to a pass nor to a permanent verdict.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// maxTXTBytes bounds the text of one TXT answer (all records, all strings). A DNS message
// holds at most 64 KiB; real SPF, DKIM and DMARC records are well under 4 KiB. A larger
// answer is refused as a permanent error rather than parsed.
const maxTXTBytes = 16 << 10

// checkedResolver wraps the configured Resolver so that the libraries below (go-msgauth,
// blitiri.com.ar/go/spf), which classify errors by type assertion on *net.DNSError, always
// see one: an unknown or wrapped error becomes a temporary *net.DNSError.
type checkedResolver struct {
	r Resolver
}

func (c checkedResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := c.r.LookupTXT(ctx, name)
	if err != nil {
		return nil, dnsError(err, name)
	}
	n := 0
	for _, t := range txts {
		n += len(t)
	}
	if n > maxTXTBytes {
		return nil, &net.DNSError{Err: "TXT answer too large", Name: name}
	}
	return txts, nil
}

func (c checkedResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, err := c.r.LookupMX(ctx, name)
	return mxs, dnsError(err, name)
}

func (c checkedResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ips, err := c.r.LookupIPAddr(ctx, host)
	return ips, dnsError(err, host)
}

func (c checkedResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	names, err := c.r.LookupAddr(ctx, addr)
	return names, dnsError(err, addr)
}

// dnsError returns err as a *net.DNSError: as it is if it is one (or wraps one), else as
// a temporary failure naming the cause.
func dnsError(err error, name string) error {
	if err == nil {
		return nil
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
}

// isNotFound and isTemporary read the convention above.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func isTemporary(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsTemporary || de.IsTimeout)
}
