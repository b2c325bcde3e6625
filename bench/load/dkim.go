package load

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/emersion/go-msgauth/dkim"
)

// DKIMSigner signs the messages of a run (smtp -dkim-key): the signed-mail
// mode, for measuring what verifying signatures costs a receiver. Signing
// every message would cost the load tool about 1 ms of CPU each with an
// RSA-2048 key, on the cores it shares with the server, so the signature
// covers what every message of a run has in common (From, MIME-Version,
// Content-Type and the body, h= naming those three) and is made once per
// body length. The receiver verifies every message in full all the same:
// header canonicalization, body hash, key look-up and the signature check.
type DKIMSigner struct {
	Domain   string // d=
	Selector string // s=
	Key      crypto.Signer

	mu     sync.Mutex
	fields map[int]string // the DKIM-Signature field by body length
}

// LoadDKIMKey reads a PEM private key (PKCS #8, or PKCS #1 for RSA) for d=
// domain and s= selector.
func LoadDKIMKey(file, domain, selector string) (*DKIMSigner, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", file)
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
		if key, err = x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
			return nil, fmt.Errorf("%s: not a PKCS #8 or PKCS #1 private key", file)
		}
	}
	signer, ok := key.(crypto.Signer)
	if !ok || domain == "" || selector == "" {
		return nil, errors.New("dkim: need an RSA or Ed25519 key, a domain and a selector")
	}
	return &DKIMSigner{Domain: domain, Selector: selector, Key: signer}, nil
}

// field returns the DKIM-Signature field (CRLF-terminated) for a message from
// `from` whose body is writeBody(n).
func (s *DKIMSigner) field(from string, n int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.fields[n]; ok {
		return f, nil
	}
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "From: <%s>\r\n%s", from, commonHeader)
	if _, err := writeBody(&msg, n); err != nil {
		return "", err
	}
	sig, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 s.Domain,
		Selector:               s.Selector,
		Signer:                 s.Key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             []string{"From", "MIME-Version", "Content-Type"},
	})
	if err != nil {
		return "", err
	}
	if _, err := msg.WriteTo(sig); err != nil {
		return "", err
	}
	if err := sig.Close(); err != nil {
		return "", err
	}
	f := sig.Signature()
	if !strings.HasSuffix(f, "\r\n") {
		f += "\r\n"
	}
	if s.fields == nil {
		s.fields = map[int]string{}
	}
	s.fields[n] = f
	return f, nil
}
