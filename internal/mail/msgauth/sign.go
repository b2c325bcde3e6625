package msgauth

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-msgauth/dkim"
)

// signedHeaders are the fields a signature covers when present, after RFC 6376 §5.4.1 and
// RFC 8058 §4 (List-Unsubscribe-Post). Trace fields (Received, Return-Path) and anything a
// relay legitimately adds are left out, or the signature would break in transit.
var signedHeaders = []string{
	"From", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc",
	"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"Content-ID", "Content-Description", "Content-Language",
	"Resent-Date", "Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc", "Resent-Message-ID",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Subscribe",
	"List-Post", "List-Owner", "List-Archive",
}

// overSigned fields are listed once more than they occur (RFC 6376 §8.15, "oversigning"):
// a field of that name added after signing, such as a second From or Subject that an MUA
// might show instead of ours, then breaks the signature.
var overSigned = map[string]bool{
	"from": true, "sender": true, "reply-to": true, "subject": true, "date": true,
	"message-id": true, "to": true, "cc": true, "in-reply-to": true, "references": true,
	"mime-version": true, "content-type": true, "content-transfer-encoding": true,
	"list-unsubscribe": true, "list-unsubscribe-post": true,
}

// headerKeys is the h= list for a message with the given header fields: each signed field
// as many times as it occurs, plus one for the oversigned ones. From is always present
// (RFC 6376 §5.4: From MUST be signed), even for a message that lacks it.
func headerKeys(fields []field) []string {
	count := map[string]int{}
	for _, f := range fields {
		count[strings.ToLower(f.name)]++
	}
	var keys []string
	for _, name := range signedHeaders {
		lower := strings.ToLower(name)
		n := count[lower]
		if overSigned[lower] {
			n++
		}
		for range n {
			keys = append(keys, name)
		}
	}
	return keys
}

// Signer signs outgoing mail with the keys of the sending domain: relaxed/relaxed
// canonicalization (RFC 6376 §3.4.2 and §3.4.4: it survives the whitespace and folding
// changes relays make), rsa-sha256 and ed25519-sha256 (RFC 8463), no l= tag and no x=.
type Signer struct {
	Keys           KeySource
	MaxHeaderBytes int // bound on the header section; 0 means DefaultMaxHeaderBytes

	// bufs holds the buffers the message is copied through to the signers: io.Copy made a
	// new 32 KiB one per message (a fifth of the bytes the relay path allocated).
	bufs sync.Pool
	// readers holds the bufio.Readers the message is read through, for the same reason.
	readers sync.Pool
}

// Sign reads the message in r (header and body, CRLF line ends, exactly as it will be sent)
// and returns the DKIM-Signature fields to prepend to it, one per key of domain, each
// ending in CRLF; "" when domain has no keys. For DMARC (RFC 7489 §3.1.1) domain should be
// the domain of the message's From address or its parent. The message streams through:
// only its header section is held in memory.
func (s *Signer) Sign(ctx context.Context, domain string, r io.Reader) (string, error) {
	keys, err := s.Keys.SigningKeys(ctx, domain)
	if err != nil {
		return "", fmt.Errorf("msgauth: DKIM keys of %s: %w", domain, err)
	}
	if len(keys) == 0 {
		return "", nil
	}
	br, _ := s.readers.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReader(r)
	} else {
		br.Reset(r)
	}
	defer func() {
		br.Reset(nil) // holds no reference to the message while pooled
		s.readers.Put(br)
	}()
	hdr, err := readHeader(br, headerLimit(s.MaxHeaderBytes))
	if err != nil {
		return "", fmt.Errorf("msgauth: DKIM signing: %w", err)
	}
	hkeys := headerKeys(splitFields(hdr))
	hdr = terminated(hdr)

	signers := make([]*dkim.Signer, 0, len(keys))
	writers := make([]io.Writer, 0, len(keys))
	defer func() {
		for _, sg := range signers {
			sg.Close() // ends the signer's goroutine if we return early; harmless after
		}
	}()
	for _, k := range keys {
		sg, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 k.Domain,
			Selector:               k.Selector,
			Signer:                 k.Signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             hkeys,
		})
		if err != nil {
			return "", fmt.Errorf("msgauth: DKIM key %s: %w", k.RecordName(), err)
		}
		signers = append(signers, sg)
		writers = append(writers, sg)
	}
	w := io.MultiWriter(writers...)
	buf, _ := s.bufs.Get().(*[]byte)
	if buf == nil {
		b := make([]byte, 8<<10)
		buf = &b
	}
	_, err = io.CopyBuffer(w, &message{hdr: hdr, body: br}, *buf)
	s.bufs.Put(buf)
	if err != nil {
		return "", fmt.Errorf("msgauth: DKIM signing: %w", err)
	}
	var out strings.Builder
	for i, sg := range signers {
		if err := sg.Close(); err != nil {
			return "", fmt.Errorf("msgauth: DKIM key %s: %w", keys[i].RecordName(), err)
		}
		out.WriteString(sg.Signature())
	}
	return out.String(), nil
}
