package load

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
)

// messageMaker builds the test messages of one run: valid RFC 5322 messages
// of an exact size, each with a unique Message-ID and a unique token in the
// Subject, so a message can be found again in a mailbox.
type messageMaker struct {
	run  string // random id of this run, part of every token
	from string
	size int         // wanted size in bytes, CRLF line endings (without a DKIM-Signature field)
	sign *DKIMSigner // nil: unsigned
}

func newMessageMaker(from string, size int, sign *DKIMSigner) messageMaker {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return messageMaker{run: hex.EncodeToString(b[:]), from: from, size: size, sign: sign}
}

// Token is the unique token of message seq: it is in the Subject and the
// Message-ID.
func (m messageMaker) token(seq int) string { return fmt.Sprintf("%s-%d", m.run, seq) }

// header returns the header section of message seq, blank line included.
func (m messageMaker) header(seq int, to []string) []byte {
	var b strings.Builder
	tok := m.token(seq)
	// RFC 5322 §3.6: Date and From are required; the rest help people and
	// threading tools find the message.
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: <%s>\r\n", m.from)
	// One address per line keeps every line far below the 998-octet limit
	// of RFC 5322 §2.1.1, however many recipients there are.
	b.WriteString("To: ")
	for i, rcpt := range to {
		if i > 0 {
			b.WriteString(",\r\n ")
		}
		fmt.Fprintf(&b, "<%s>", rcpt)
	}
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "Subject: petrel-load %s\r\n", tok)
	fmt.Fprintf(&b, "Message-ID: <%s@petrel-load.invalid>\r\n", tok)
	b.WriteString(commonHeader)
	return []byte(b.String())
}

// commonHeader ends every message's header section (DKIMSigner signs it).
const commonHeader = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"

// write writes message seq and returns its size. The message is exactly
// m.size bytes (plus the DKIM-Signature field when signing) unless that is smaller than the header section (then it is
// the header and one empty body line).
func (m messageMaker) write(w io.Writer, seq int, to []string) (int64, error) {
	hdr := m.header(seq, to)
	bodyLen := max(m.size-len(hdr), 0)
	var sig int
	if m.sign != nil {
		f, err := m.sign.field(m.from, bodyLen)
		if err != nil {
			return 0, err
		}
		if sig, err = io.WriteString(w, f); err != nil {
			return int64(sig), err
		}
	}
	n, err := w.Write(hdr)
	if err != nil {
		return int64(sig + n), err
	}
	bn, err := writeBody(w, bodyLen)
	return int64(sig+n) + bn, err
}

// bodyLine is the text of body lines; it never starts with "." so the SMTP
// client has nothing to dot-stuff and POP3 sizes stay simple to check.
const bodyLine = "The quick brown fox jumps over the lazy dog, 0123456789, in a petrel-load body."

// writeBody writes n bytes of CRLF-terminated text lines of at most 80
// bytes. n = 1 cannot be a line, so it writes 2 bytes then.
func writeBody(w io.Writer, n int) (int64, error) {
	var written int64
	for n > 0 {
		l := min(n, 80)
		if n-l == 1 {
			l-- // leave 2 bytes for a last, empty line rather than 1
		}
		l = max(l, 2)
		k, err := io.WriteString(w, bodyLine[:l-2]+"\r\n")
		written += int64(k)
		if err != nil {
			return written, err
		}
		n -= l
	}
	return written, nil
}
