package deliver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

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
	var sig string
	if d.out.signer != nil && env.MailFrom != "" {
		_, domain, _ := strings.Cut(env.MailFrom, "@")
		var err error
		sig, err = d.out.signer.Sign(ctx, strings.ToLower(domain), io.NewSectionReader(body, skip, size))
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
		Body:       io.MultiReader(strings.NewReader(sig), io.NewSectionReader(body, skip, size)),
		Size:       int64(len(sig)) + size,
	}, nil
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
