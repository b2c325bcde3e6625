package arc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// LookupTXT returns the TXT records of a name (the DKIM key records of
// selector._domainkey.domain), as *net.Resolver's LookupTXT does.
type LookupTXT func(ctx context.Context, name string) ([]string, error)

// Result is a chain's validation.
type Result struct {
	Status    Status
	Instances int   // the sets on the message (0 for none); valid or not
	Err       error // why not pass, for the log
}

// set is the three fields of one instance.
type set struct {
	aar, ams, as *field
}

// Verify validates the ARC chain of a message (RFC 8617 §5.2): hdr is its
// header section, body the rest, read only when the chain's structure is
// sound (for the newest AMS's body hash). The error is only for a body that
// cannot be read; everything wrong with the chain, DNS failures included, is
// Fail with Result.Err saying why.
func Verify(ctx context.Context, hdr []byte, body io.Reader, lookup LookupTXT) (Result, error) {
	fields := splitHeader(hdr)
	sets, n, err := collect(fields)
	if n == 0 && err == nil {
		return Result{Status: None}, nil
	}
	res := Result{Status: Fail, Instances: n}
	if err != nil {
		res.Err = err
		return res, nil
	}
	// §5.2 step 2-3: the newest seal must not report a failure, the first
	// must say none and every later one pass.
	for i := n; i >= 1; i-- {
		t, err := parseTags(sets[i].as.value())
		if err != nil {
			res.Err = fmt.Errorf("ARC-Seal i=%d: %w", i, err)
			return res, nil
		}
		want := Pass
		if i == 1 {
			want = None
		}
		if cv := Status(strings.ToLower(t["cv"])); cv != want {
			res.Err = fmt.Errorf("ARC-Seal i=%d: cv=%s", i, cv)
			return res, nil
		}
	}
	// Step 4: the newest AMS validates (older ones may have been broken by
	// the later handlers' changes, which is what ARC is for).
	if err := verifyAMS(ctx, fields, sets[n].ams, body, lookup); err != nil {
		if errors.Is(err, errRead) {
			return Result{}, err
		}
		res.Err = fmt.Errorf("ARC-Message-Signature i=%d: %w", n, err)
		return res, nil
	}
	// Step 5: every seal, newest first.
	for i := n; i >= 1; i-- {
		if err := verifySeal(ctx, sets, i, lookup); err != nil {
			res.Err = fmt.Errorf("ARC-Seal i=%d: %w", i, err)
			return res, nil
		}
	}
	return Result{Status: Pass, Instances: n}, nil
}

var errRead = errors.New("arc: reading the body")

// collect groups the ARC fields by instance: exactly one AAR, AMS and AS for
// each of 1..n (RFC 8617 §4.2.1, §5.2 step 2). sets is indexed by instance.
func collect(fields []field) ([]set, int, error) {
	var sets []set
	max, count := 0, 0
	for k := range fields {
		f := &fields[k]
		name := strings.ToLower(f.name)
		if name != aarName && name != amsName && name != asName {
			continue
		}
		count++
		i := instanceOf(f.name, f.value())
		if i == 0 {
			return nil, count, fmt.Errorf("%s without a valid i= (1 to %d)", f.name, MaxInstances)
		}
		for len(sets) <= i {
			sets = append(sets, set{})
		}
		slot := map[string]**field{aarName: &sets[i].aar, amsName: &sets[i].ams, asName: &sets[i].as}[name]
		if *slot != nil {
			return nil, count, fmt.Errorf("two %s fields with i=%d", f.name, i)
		}
		*slot = f
		max = maxInt(max, i)
	}
	if count == 0 {
		return nil, 0, nil
	}
	for i := 1; i <= max; i++ {
		if sets[i].aar == nil || sets[i].ams == nil || sets[i].as == nil {
			return nil, max, fmt.Errorf("instance %d is not a whole set", i)
		}
	}
	return sets, max, nil
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// verifyAMS checks an ARC-Message-Signature as DKIM checks a signature (RFC
// 8617 §5.2 step 4 refers to RFC 6376 §6), without DKIM's v= and with i= as
// the instance.
func verifyAMS(ctx context.Context, fields []field, ams *field, body io.Reader, lookup LookupTXT) error {
	t, err := parseTags(ams.value())
	if err != nil {
		return err
	}
	for _, tag := range []string{"a", "b", "bh", "d", "h", "s"} {
		if t[tag] == "" {
			return fmt.Errorf("missing %s=", tag)
		}
	}
	if _, ok := t["l"]; ok {
		return errors.New("l= (a partial body) is refused")
	}
	hc, bc, err := canonicalizations(t["c"])
	if err != nil {
		return err
	}
	bh, err := base64.StdEncoding.DecodeString(noSpace(t["bh"]))
	if err != nil {
		return fmt.Errorf("bh=: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(noSpace(t["b"]))
	if err != nil {
		return fmt.Errorf("b=: %w", err)
	}
	h := sha256.New()
	if err := hashBody(h, body, bc); err != nil {
		return fmt.Errorf("%w: %v", errRead, err)
	}
	if subtle.ConstantTimeCompare(h.Sum(nil), bh) != 1 {
		return errors.New("body hash mismatch")
	}
	var names []string
	for _, n := range strings.Split(t["h"], ":") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if containsFold(names, "arc-seal") {
		return errors.New("h= names ARC-Seal") // RFC 8617 §4.1.2
	}
	h.Reset()
	hashPicked(h, fields, names, hc)
	h.Write([]byte(strings.TrimSuffix(canonHeader(withoutB(ams.raw), hc), "\r\n")))
	return checkKey(ctx, t, h.Sum(nil), sig, lookup)
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// hashPicked hashes the fields h= names, each name taking the next instance
// from the bottom up; a name with no instance left adds nothing (RFC 6376
// §5.4.2).
func hashPicked(h io.Writer, fields []field, names []string, relaxed bool) {
	used := map[string]int{} // by lower-case name: instances taken from the bottom
	for _, n := range names {
		key := strings.ToLower(n)
		skip := used[key]
		for k := len(fields) - 1; k >= 0; k-- {
			if !strings.EqualFold(fields[k].name, n) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			io.WriteString(h, canonHeader(fields[k].raw, relaxed))
			break
		}
		used[key]++
	}
}

// canonicalizations reads c= (RFC 6376 §3.5; default simple/simple).
func canonicalizations(c string) (header, body bool, err error) {
	hc, bc, _ := strings.Cut(strings.ToLower(noSpace(c)), "/")
	parse := func(s string) (bool, error) {
		switch s {
		case "", "simple":
			return false, nil
		case "relaxed":
			return true, nil
		}
		return false, fmt.Errorf("unknown canonicalization %q", s)
	}
	if header, err = parse(hc); err != nil {
		return
	}
	body, err = parse(bc)
	return
}

// verifySeal checks the ARC-Seal of instance i (RFC 8617 §5.1.1 for what it
// covers): every set from 1 to i, each as AAR, AMS, AS, relaxed, and the
// seal itself without its b= value and final CRLF.
func verifySeal(ctx context.Context, sets []set, i int, lookup LookupTXT) error {
	t, err := parseTags(sets[i].as.value())
	if err != nil {
		return err
	}
	for _, tag := range []string{"a", "b", "d", "s", "cv"} {
		if t[tag] == "" {
			return fmt.Errorf("missing %s=", tag)
		}
	}
	if _, ok := t["h"]; ok {
		return errors.New("h= is not allowed in a seal") // §4.1.3
	}
	sig, err := base64.StdEncoding.DecodeString(noSpace(t["b"]))
	if err != nil {
		return fmt.Errorf("b=: %w", err)
	}
	return checkKey(ctx, t, sealHash(sets, i, withoutB(sets[i].as.raw)), sig, lookup)
}

// sealHash is the hash a seal of instance i signs, given that seal's field
// with an empty b=.
func sealHash(sets []set, i int, seal string) []byte {
	h := sha256.New()
	for k := 1; k <= i; k++ {
		io.WriteString(h, relaxedHeader(sets[k].aar.raw))
		io.WriteString(h, relaxedHeader(sets[k].ams.raw))
		if k < i {
			io.WriteString(h, relaxedHeader(sets[k].as.raw))
		}
	}
	io.WriteString(h, strings.TrimSuffix(relaxedHeader(seal), "\r\n"))
	return h.Sum(nil)
}

// checkKey looks up the key of d= and s= and checks the signature.
func checkKey(ctx context.Context, t tags, hashed, sig []byte, lookup LookupTXT) error {
	d, s := strings.ToLower(noSpace(t["d"])), noSpace(t["s"])
	if strings.ContainsAny(s+d, "/\\") || strings.HasPrefix(s, ".") || strings.HasPrefix(d, ".") {
		return errors.New("bad d= or s=")
	}
	txts, err := lookup(ctx, s+"._domainkey."+d)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return fmt.Errorf("no key at %s._domainkey.%s", s, d)
		}
		return fmt.Errorf("key look-up: %w", err)
	}
	if len(txts) != 1 {
		return fmt.Errorf("%d key records at %s._domainkey.%s", len(txts), s, d)
	}
	pub, err := publicKey(txts[0])
	if err != nil {
		return err
	}
	return checkSignature(strings.ToLower(noSpace(t["a"])), pub, hashed, sig)
}
