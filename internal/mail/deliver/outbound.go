package deliver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"petrel/internal/store"
)

// Signer makes the DKIM-Signature fields of an outgoing message; *msgauth.Signer
// implements it.
type Signer interface {
	Sign(ctx context.Context, domain string, r io.Reader) (string, error)
}

// outbound is what Deliver needs to queue remote recipients.
type outbound struct {
	signer Signer // nil: no signatures
	queued func() // called after a commit that queued something (wakes the queue)
}

// SetOutbound lets Deliver sign the copies it queues for remote recipients with signer
// (nil: unsigned) and call queued after each commit that queued one.
func (d *Deliverer) SetOutbound(signer Signer, queued func()) {
	d.out = outbound{signer: signer, queued: queued}
}

// outbound builds the queued copy of a message for env's remote recipients, nil if there
// are none. The copy is the message as it goes out: without the Return-Path the session
// wrote first (RFC 5321 §4.4: only the final delivery adds it), and DKIM-signed with the
// key of the sender's domain, so that the signature covers the Received field we added.
func (d *Deliverer) outbound(ctx context.Context, env Envelope, body Body) (*store.Outbound, error) {
	if len(env.Remote) == 0 {
		return nil, nil
	}
	skip := returnPathLen(body)
	size := body.Size() - skip
	_, domain, _ := strings.Cut(env.MailFrom, "@")
	domain = strings.ToLower(domain)
	added := missingFields(io.NewSectionReader(body, skip, size), domain, env.ReceivedAt)
	var sig string
	if d.out.signer != nil && env.MailFrom != "" {
		var err error
		sig, err = d.out.signer.Sign(ctx, domain, io.MultiReader(strings.NewReader(added), io.NewSectionReader(body, skip, size)))
		if err != nil {
			// Unsigned mail would fail DMARC at the far side: better a retry by the client.
			return nil, fmt.Errorf("deliver: %w", err)
		}
	}
	return &store.Outbound{
		MailFrom:   env.MailFrom,
		Ret:        env.Ret,
		EnvID:      env.EnvID,
		Recipients: env.Remote,
		Body:       io.MultiReader(strings.NewReader(sig+added), io.NewSectionReader(body, skip, size)),
		Size:       int64(len(sig)+len(added)) + size,
	}, nil
}

// missingFields returns the Date and Message-ID fields a submitted message lacks (RFC 6409
// §8.2, §8.3: the submission server may add them), to go out with it. Added here, before
// signing, they are covered by the signature; added by a relay later (Postfix does), they
// would break it, since the signature covers their absence.
func missingFields(r io.Reader, domain string, at time.Time) string {
	br := bufio.NewReaderSize(r, 4096)
	var date, msgID bool
	for n := 0; n < maxHeaderScan; {
		line, err := br.ReadSlice('\n')
		n += len(line)
		if len(bytes.TrimRight(line, "\r\n")) == 0 || err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return "" // unreadable: add nothing
		}
		date = date || hasName(line, "date:")
		msgID = msgID || hasName(line, "message-id:")
		for err == bufio.ErrBufferFull { // the rest of a long line
			line, err = br.ReadSlice('\n')
			n += len(line)
		}
	}
	var b strings.Builder
	if at.IsZero() {
		at = time.Now()
	}
	if !date {
		b.WriteString("Date: " + at.Format(time.RFC1123Z) + "\r\n")
	}
	if !msgID && domain != "" {
		var id [12]byte
		rand.Read(id[:])
		b.WriteString("Message-ID: <" + hex.EncodeToString(id[:]) + "@" + domain + ">\r\n")
	}
	return b.String()
}

// maxHeaderScan bounds the header section missingFields reads.
const maxHeaderScan = 1 << 20

func hasName(line []byte, name string) bool {
	return len(line) >= len(name) && bytes.EqualFold(line[:len(name)], []byte(name))
}

// returnPathLen is the length of a leading Return-Path field (as the SMTP session writes
// it: one line), 0 if the message does not start with one.
func returnPathLen(body Body) int64 {
	const name = "return-path:"
	br := bufio.NewReaderSize(io.NewSectionReader(body, 0, body.Size()), 1024)
	line, err := br.ReadSlice('\n')
	if err != nil || len(line) < len(name) || !bytes.EqualFold(line[:len(name)], []byte(name)) {
		return 0
	}
	// A folded field would continue on the next line; ours never is, anyone else's stays.
	if next, err := br.Peek(1); err == nil && (next[0] == ' ' || next[0] == '\t') {
		return 0
	}
	return int64(len(line))
}
