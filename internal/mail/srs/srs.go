// Package srs rewrites the envelope sender of forwarded mail with the Sender Rewriting
// Scheme, so that the forwarded copy passes SPF at the next hop (the sender's domain does not
// list our addresses; ours does) and a bounce of it finds its way back to the original sender.
//
// The address shapes are those of libsrs2 and postsrsd (the scheme's description at
// https://www.libsrs2.org/srs/srs.pdf):
//
//	SRS0=HHHH=TT=example.org=alice@forwarder.test      alice@example.org, forwarded once
//	SRS1=HHHH=first.test==HHHH=TT=example.org=alice@forwarder.test
//	                                                    forwarded again: the SRS0 address of
//	                                                    first.test, kept as it was
//
// HHHH is the start of an HMAC-SHA1 (base64) under a key only we hold, so only addresses we
// made are reversed and nobody can use us as an open relay for bounces; TT is the day (base32,
// modulo 1024) an SRS0 address was made, so an old address stops working after MaxAge.
//
// Written here rather than taken from a library: no SRS module is among the project's
// dependencies, and the scheme is a page of string handling over crypto/hmac.
package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
	"time"
)

var (
	// ErrNotSRS means an address is not an SRS address at all.
	ErrNotSRS = errors.New("srs: not an SRS address")
	// ErrForged means an address looks like SRS but we did not make it (or no longer accept
	// it): a wrong hash, an expired timestamp, or a malformed address.
	ErrForged = errors.New("srs: forged or expired SRS address")
)

const (
	// MaxAge is how long an SRS0 address reverses after it was made: long enough for the
	// slowest bounce (queues give up after 5 days), short enough that a harvested address
	// stops being useful to spammers.
	MaxAge = 21 * 24 * time.Hour
	// hashLen is the base64 characters of the HMAC kept in an address: 24 bits, what libsrs2
	// and postsrsd use. A forger must guess per attempt, and attempts are SMTP transactions.
	hashLen = 4
	// timeSlots is the modulus of the day counter (two base32 characters).
	timeSlots = 1024
)

const base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// Rewriter makes and reverses SRS addresses under one secret key.
type Rewriter struct {
	Key []byte           // the HMAC secret; keep it across restarts
	Now func() time.Time // nil: time.Now
}

func (r *Rewriter) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Forward returns the envelope sender for mail from sender forwarded by domain (one of
// ours). The null sender stays null (a bounce is never bounced); a sender at domain itself
// is kept (SPF already passes).
func (r *Rewriter) Forward(sender, domain string) string {
	local, sdomain, ok := cut(sender)
	if !ok || strings.EqualFold(sdomain, domain) {
		return sender
	}
	switch tag, rest := split(local); tag {
	case "SRS0":
		// Already rewritten by first.test: point back to that forwarder, which alone can
		// reverse it (the SRS0 part is kept as it is; rest starts with its separator).
		return r.srs1(sdomain, rest, domain)
	case "SRS1":
		// SRS1=HHHH=first.test==...: keep first.test and its part, sign them anew.
		if _, first, orig, ok := srs1Parts(rest); ok {
			return r.srs1(first, orig, domain)
		}
	}
	tt := r.stamp(r.now())
	return "SRS0=" + r.hash(tt, sdomain, local) + "=" + tt + "=" + sdomain + "=" + local + "@" + domain
}

func (r *Rewriter) srs1(first, orig, domain string) string {
	return "SRS1=" + r.hash(first, orig) + "=" + first + "=" + orig + "@" + domain
}

// Reverse returns the address an SRS address we made stands for: the original sender for
// SRS0, the first forwarder's SRS0 address for SRS1. Anything else is ErrNotSRS; an SRS
// address with a bad hash, an expired stamp or a broken shape is ErrForged. The domain part
// is not checked: the caller knows it is ours.
func (r *Rewriter) Reverse(addr string) (string, error) {
	local, _, ok := cut(addr)
	if !ok {
		return "", ErrNotSRS
	}
	tag, rest := split(local)
	switch tag {
	case "SRS0":
		parts := strings.SplitN(rest[1:], "=", 4) // rest[0] is the separator
		if len(parts) != 4 || parts[2] == "" || parts[3] == "" {
			return "", ErrForged
		}
		h, tt, domain, user := parts[0], parts[1], parts[2], parts[3]
		if !r.valid(h, tt, domain, user) || !r.fresh(tt) {
			return "", ErrForged
		}
		return user + "@" + domain, nil
	case "SRS1":
		h, first, orig, ok := srs1Parts(rest)
		if !ok || !r.valid(h, first, orig) {
			return "", ErrForged
		}
		return "SRS0" + orig + "@" + first, nil
	}
	return "", ErrNotSRS
}

// srs1Parts splits the part of an SRS1 local part after "SRS1": =HHHH=first==rest.
func srs1Parts(rest string) (h, first, orig string, ok bool) {
	parts := strings.SplitN(rest[1:], "=", 3)
	if len(parts) != 3 || parts[1] == "" || len(parts[2]) < 2 || !isSep(parts[2][0]) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// split returns "SRS0" or "SRS1" (upper-cased) and the rest of local from the separator
// on, or "" when local is neither.
func split(local string) (tag, rest string) {
	if len(local) < 6 || !isSep(local[4]) {
		return "", ""
	}
	tag = strings.ToUpper(local[:4])
	if tag != "SRS0" && tag != "SRS1" {
		return "", ""
	}
	return tag, local[4:]
}

// isSep: libsrs2 accepts "=", "+" and "-" after SRS0/SRS1; we write "=".
func isSep(c byte) bool { return c == '=' || c == '+' || c == '-' }

func cut(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	return addr[:i], addr[i+1:], true
}

// hash is the first hashLen characters of the base64 HMAC of the parts, lower-cased:
// relays may change the case of a local part, so the comparison ignores it (as libsrs2's).
func (r *Rewriter) hash(parts ...string) string {
	m := hmac.New(sha1.New, r.Key)
	for _, p := range parts {
		m.Write([]byte(strings.ToLower(p)))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))[:hashLen]
}

func (r *Rewriter) valid(h string, parts ...string) bool {
	want := r.hash(parts...)
	return len(h) == hashLen &&
		subtle.ConstantTimeCompare([]byte(strings.ToLower(h)), []byte(strings.ToLower(want))) == 1
}

// stamp is the day of t, modulo timeSlots, in two base32 characters.
func (r *Rewriter) stamp(t time.Time) string {
	d := int(t.Unix()/86400) % timeSlots
	return string([]byte{base32Alphabet[d>>5], base32Alphabet[d&31]})
}

// fresh reports whether the stamp tt names a day within MaxAge before now (modulo
// timeSlots: an address 1024 days old would pass, as with every SRS implementation).
func (r *Rewriter) fresh(tt string) bool {
	if len(tt) != 2 {
		return false
	}
	hi := strings.IndexByte(base32Alphabet, upper(tt[0]))
	lo := strings.IndexByte(base32Alphabet, upper(tt[1]))
	if hi < 0 || lo < 0 {
		return false
	}
	today := int(r.now().Unix()/86400) % timeSlots
	age := (today - (hi<<5 | lo) + timeSlots) % timeSlots
	return time.Duration(age)*24*time.Hour <= MaxAge
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
