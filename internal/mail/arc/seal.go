package arc

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Signer adds ARC sets for one domain with one of its DKIM keys.
type Signer struct {
	Domain   string        // d=
	Selector string        // s=
	Key      crypto.Signer // *rsa.PrivateKey or ed25519.PrivateKey
	// Now is the clock for t=; nil means time.Now.
	Now func() time.Time
}

// signedFields are the fields an AMS signs when present, each once: those
// RFC 6376 §5.4.1 recommends for DKIM, and the DKIM signatures, so that a
// later handler's AMS covers what the author's domain signed. Never
// ARC-Seal (RFC 8617 §4.1.2) nor Authentication-Results, which a receiver
// removes and rewrites.
var signedFields = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"List-Id", "List-Unsubscribe", "DKIM-Signature"}

// Seal returns the next ARC set for a message being forwarded: the ARC-Seal,
// ARC-Message-Signature and ARC-Authentication-Results fields, in the order
// to prepend them, each ending in CRLF. hdr is the header section as it will
// leave (with the set's position at the top), body the rest; authServID and
// results are this handler's Authentication-Results (results without the
// authserv-id: "spf=pass smtp.mailfrom=...; dkim=..."); chain is Verify's
// result for the message as it arrived.
//
// A chain that failed is not extended and neither is one of MaxInstances
// sets (RFC 8617 §5.1.1: a set after a failed chain says nothing a receiver
// can use): Seal returns "" then.
func (s *Signer) Seal(hdr []byte, body io.Reader, authServID, results string, chain Result) (string, error) {
	if chain.Status == Fail || chain.Instances >= MaxInstances {
		return "", nil
	}
	algo, err := s.algorithm()
	if err != nil {
		return "", err
	}
	fields := splitHeader(hdr)
	sets, n, err := collect(fields)
	if err != nil || n != chain.Instances {
		return "", nil // the chain changed or was never sound: same as failed
	}
	i := n + 1
	cv := Pass
	if n == 0 {
		cv = None
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := strconv.FormatInt(now().Unix(), 10)

	aar := "ARC-Authentication-Results: i=" + strconv.Itoa(i) + "; " + authServID
	if results = strings.TrimSpace(results); results != "" {
		aar += ";\r\n\t" + strings.ReplaceAll(results, "\r\n", "\r\n\t")
	}
	aar += "\r\n"

	// The AMS: the body hash, then the fields named, then itself without b=.
	bh := sha256.New()
	if err := hashBody(bh, body, true); err != nil {
		return "", err
	}
	var names []string
	for _, name := range signedFields {
		for _, f := range fields {
			if strings.EqualFold(f.name, name) {
				names = append(names, name)
				break
			}
		}
	}
	ams := "ARC-Message-Signature: i=" + strconv.Itoa(i) + "; a=" + algo + "; c=relaxed/relaxed;\r\n" +
		"\td=" + s.Domain + "; s=" + s.Selector + "; t=" + t + ";\r\n" +
		"\th=" + strings.Join(names, ":") + ";\r\n" +
		"\tbh=" + base64.StdEncoding.EncodeToString(bh.Sum(nil)) + ";\r\n\tb="
	h := sha256.New()
	hashPicked(h, fields, names, true)
	io.WriteString(h, strings.TrimSuffix(relaxedHeader(ams), "\r\n"))
	sig, err := s.sign(h.Sum(nil))
	if err != nil {
		return "", err
	}
	ams += fold(sig) + "\r\n"

	// The seal: every earlier set, the new AAR and AMS, then itself.
	as := "ARC-Seal: i=" + strconv.Itoa(i) + "; a=" + algo + "; cv=" + string(cv) + ";\r\n" +
		"\td=" + s.Domain + "; s=" + s.Selector + "; t=" + t + ";\r\n\tb="
	newFields := splitHeader([]byte(aar + ams + as + "\r\n"))
	if sets == nil {
		sets = make([]set, 1) // index 0 is unused: sets are indexed by instance
	}
	sets = append(sets[:i:i], set{aar: &newFields[0], ams: &newFields[1], as: &newFields[2]})
	if sig, err = s.sign(sealHash(sets, i, as)); err != nil {
		return "", err
	}
	as += fold(sig) + "\r\n"
	return as + ams + aar, nil
}

func (s *Signer) algorithm() (string, error) {
	switch s.Key.(type) {
	case *rsa.PrivateKey:
		return "rsa-sha256", nil
	case ed25519.PrivateKey:
		return "ed25519-sha256", nil
	}
	return "", fmt.Errorf("arc: unsupported key type %T", s.Key)
}

// sign signs a SHA-256 hash: PKCS #1 v1.5 for RSA, the hash itself as the
// message for Ed25519 (RFC 8463 §3).
func (s *Signer) sign(hashed []byte) (string, error) {
	var opts crypto.SignerOpts = crypto.SHA256
	if _, ok := s.Key.(ed25519.PrivateKey); ok {
		opts = crypto.Hash(0)
	}
	sig, err := s.Key.Sign(rand.Reader, hashed, opts)
	if err != nil {
		return "", errors.Join(errors.New("arc: signing"), err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// fold breaks a base64 value into lines of 72 characters (folding white space,
// which the relaxed canonicalization and the b= rules ignore).
func fold(b64 string) string {
	var b strings.Builder
	for len(b64) > 72 {
		b.WriteString(b64[:72])
		b.WriteString("\r\n\t ")
		b64 = b64[72:]
	}
	b.WriteString(b64)
	return b.String()
}
