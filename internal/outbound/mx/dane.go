package mx

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// TLSA is one TLSA record (RFC 6698 §2.1).
type TLSA struct {
	Usage        uint8 // 2 DANE-TA, 3 DANE-EE; 0 and 1 (PKIX-*) are unusable for SMTP
	Selector     uint8 // 0 full certificate, 1 SubjectPublicKeyInfo
	MatchingType uint8 // 0 exact, 1 SHA-256, 2 SHA-512
	Data         []byte
}

// TLSA usages of RFC 7218.
const (
	DANETA = 2
	DANEEE = 3
)

// Usable reports whether SMTP may use the record: RFC 7672 §3.1.3 makes PKIX-TA(0) and
// PKIX-EE(1) unusable for SMTP, and unknown selectors and matching types are unusable too
// (RFC 7672 §2.2).
func (t TLSA) Usable() bool {
	return (t.Usage == DANETA || t.Usage == DANEEE) && t.Selector <= 1 && t.MatchingType <= 2
}

func (t TLSA) String() string {
	return fmt.Sprintf("%d %d %d %x", t.Usage, t.Selector, t.MatchingType, t.Data)
}

// matches reports whether cert is the one the record names.
func (t TLSA) matches(cert *x509.Certificate) bool {
	return bytes.Equal(associationData(cert, t.Selector, t.MatchingType), t.Data)
}

// TLSAFor makes the record of usage, selector and matching type for cert (RFC 6698 §2.1):
// what a domain publishes for its server, and what tests serve.
func TLSAFor(cert *x509.Certificate, usage, selector, matchingType uint8) TLSA {
	return TLSA{Usage: usage, Selector: selector, MatchingType: matchingType,
		Data: associationData(cert, selector, matchingType)}
}

// associationData is the certificate association data of RFC 6698 §2.1.3: the whole
// certificate or its SubjectPublicKeyInfo, as is or hashed.
func associationData(cert *x509.Certificate, selector, matchingType uint8) []byte {
	data := cert.Raw
	if selector == 1 {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch matchingType {
	case 1:
		sum := sha256.Sum256(data)
		return sum[:]
	case 2:
		sum := sha512.Sum512(data)
		return sum[:]
	}
	return data
}

// VerifyDANE checks the chain a server presented (leaf first) against usable TLSA records
// (RFC 7672 §3.1):
//   - DANE-EE(3): the leaf matches. Names and validity dates are not checked (§3.1.1): the
//     record is the binding of key to server.
//   - DANE-TA(2): a certificate the server presented matches (servers must include the
//     trust anchor in the chain, §3.1.2), the leaf chains up to it, is valid at now, and
//     carries one of names, the reference identifiers (§3.2.2: the TLSA base domain and the
//     MX host name as published).
func VerifyDANE(chain []*x509.Certificate, records []TLSA, names []string, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("DANE: the server presented no certificate")
	}
	leaf := chain[0]
	for _, r := range records {
		if r.Usable() && r.Usage == DANEEE && r.matches(leaf) {
			return nil
		}
	}
	var lastErr error
	for _, r := range records {
		if !r.Usable() || r.Usage != DANETA {
			continue
		}
		for _, ta := range chain {
			if !r.matches(ta) {
				continue
			}
			roots := x509.NewCertPool()
			roots.AddCert(ta)
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			if ta == leaf { // a self-signed leaf as its own anchor: only the names count
				if err := verifyNames(leaf, names); err != nil {
					lastErr = err
					continue
				}
				if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
					lastErr = fmt.Errorf("DANE-TA: certificate not valid at %s", now.UTC().Format(time.RFC3339))
					continue
				}
				return nil
			}
			for _, name := range names {
				_, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter,
					CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
				if err == nil {
					return nil
				}
				lastErr = err
			}
		}
	}
	if lastErr != nil {
		return fmt.Errorf("DANE: %w", lastErr)
	}
	return errors.New("DANE: no TLSA record matches the server's certificates")
}

func verifyNames(cert *x509.Certificate, names []string) error {
	var err error
	for _, n := range names {
		if err = cert.VerifyHostname(n); err == nil {
			return nil
		}
	}
	return err
}

// VerifyPKIX checks a chain the WebPKI way (MTA-STS, RFC 8461 §4.2; and smart hosts): valid
// at now, up to one of roots (nil: the system's), for the host name.
func VerifyPKIX(chain []*x509.Certificate, roots *x509.CertPool, name string, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("the server presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter, CurrentTime: now})
	return err
}
