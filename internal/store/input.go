package store

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Rules every backend applies to what it is given, so that they store the same values.

// maxBodySize bounds what a delivery may carry; callers enforce far smaller message limits.
const maxBodySize = 1 << 30

// SplitAddress returns the lower-cased address and its domain. The store lower-cases even
// though callers pass normalized values: it is the last place that can keep "A@x" and
// "a@x" from becoming two rows.
func SplitAddress(address string) (addr, domain string, err error) {
	addr = strings.ToLower(strings.TrimSpace(address))
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || strings.ContainsAny(addr, " \t\r\n") {
		return "", "", fmt.Errorf("store: invalid address %q", address)
	}
	return addr, addr[at+1:], nil
}

// CheckDomainName returns a domain name lower-cased, or an error for one that cannot be.
func CheckDomainName(name string) (string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" || strings.ContainsAny(name, "@ \t\r\n") {
		return "", fmt.Errorf("store: invalid domain name %q", name)
	}
	return name, nil
}

// ReadBody reads exactly size bytes; a body shorter or longer than announced is an error
// rather than a silently truncated message.
func ReadBody(r io.Reader, size int64) ([]byte, error) {
	if size < 0 || size > maxBodySize {
		return nil, fmt.Errorf("store: invalid body size %d", size)
	}
	if r == nil {
		if size == 0 {
			return nil, nil
		}
		return nil, errors.New("store: delivery without body")
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("store: reading body of %d bytes: %w", size, err)
	}
	var one [1]byte
	switch n, err := io.ReadFull(r, one[:]); {
	case n > 0:
		return nil, fmt.Errorf("store: body is longer than its size %d", size)
	case err != io.EOF:
		return nil, fmt.Errorf("store: reading body: %w", err)
	}
	return buf, nil
}

// ReadOutbound reads the body of an outbound message and checks its recipients.
func ReadOutbound(o *Outbound) ([]byte, error) {
	if len(o.Recipients) == 0 {
		return nil, errors.New("store: outbound message without recipients")
	}
	for _, r := range o.Recipients {
		if r.Address == "" || r.Domain == "" {
			return nil, fmt.Errorf("store: outbound recipient %q without address or domain: %w", r.Address, ErrInvalid)
		}
	}
	return ReadBody(o.Body, o.Size)
}
