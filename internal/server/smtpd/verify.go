package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/emersion/go-smtp"

	"petrel/internal/mail/deliver"
	"petrel/internal/mail/door"
	"petrel/internal/mail/msgauth"
	"petrel/internal/store"
)

// Inbound verification (issue 11 point 4): SPF, DKIM and DMARC of mail arriving on the MX
// port, after the body has been spooled and before it is committed.
//
//   - msgauth.Verifier does the checks (DNS through the resolver it was given, with its own
//     deadline) on the message as the client sent it, without our trace fields.
//   - The verdict decides: DMARC p=reject → 550 5.7.1 (RFC 7489 §7.3 wants the refusal in
//     the SMTP transaction); quarantine → every target mailbox becomes Junk; a DMARC
//     temperror (the policy, or an aligned check, could not be read) → 451 4.4.3 when
//     DeferTempError is set, so that the sender retries rather than a message that its
//     domain asks us to refuse slipping in while DNS is down (RFC 7489 §6.6.2 and RFC 7208
//     §8.6 allow either; SPF results alone never refuse: DMARC decides, RFC 7489 §10.1).
//   - The stored message is our Return-Path, the Authentication-Results field, our
//     Received, then the message with every Authentication-Results field claiming our
//     authserv-id removed (RFC 8601 §5). It is put together from pieces of the spool, so
//     the body is neither copied nor rewritten.

// Verifier checks inbound mail; *msgauth.Verifier implements it.
type Verifier interface {
	Verify(ctx context.Context, env msgauth.Envelope, msg io.Reader) (*msgauth.Verdict, error)
}

var _ Verifier = (*msgauth.Verifier)(nil)

// Verification configures the checks of inbound mail on a RoleMX listener.
type Verification struct {
	Verifier   Verifier
	AuthServID string // our host name, as the Verifier writes it into Authentication-Results
	// DeferTempError answers 451 4.4.3 when DMARC could not be evaluated for a DNS failure;
	// false accepts the message with dmarc=temperror in its header.
	DeferTempError bool
	// MaxHeaderBytes bounds the header section read to remove forged
	// Authentication-Results fields; 0 means msgauth.DefaultMaxHeaderBytes.
	MaxHeaderBytes int
}

// verify checks the message in spool, which holds our trace fields (traceLen bytes, the
// first line Return-Path) followed by the message. It returns the Authentication-Results
// field to add and the targets (moved to Junk on quarantine), or the reply refusing the
// message.
func (s *session) verify(ctx context.Context, tx *transaction, spool *deliver.Spool, traceLen int64, targets []store.Target) (string, []store.Target, *smtp.SMTPError) {
	v := s.srv.cfg.Verify
	size := spool.Size()
	msg := io.NewSectionReader(spool, traceLen, size-traceLen)
	verdict, err := v.Verifier.Verify(ctx, msgauth.Envelope{RemoteIP: s.remote, Helo: s.helo, MailFrom: tx.from}, msg)
	if err != nil {
		if errors.Is(err, msgauth.ErrHeaderTooLarge) {
			return "", nil, reply(552, 5, 3, 4, "message header too large") // RFC 3463 X.3.4
		}
		s.log.Warn("verifying message failed", "msgid", tx.id, "err", err)
		return "", nil, reply(451, 4, 3, 0, "temporary failure, try again later")
	}
	s.mu.Lock()
	tx.verdict = verdict
	s.mu.Unlock()
	switch {
	case verdict.Disposition() == msgauth.Reject:
		return "", nil, reply(550, 5, 7, 1, "message refused: DMARC policy of "+verdict.DMARC.From+" says reject") // RFC 7489 §7.3
	case verdict.DMARC.Result == msgauth.TempError && v.DeferTempError:
		return "", nil, reply(451, 4, 4, 3, "temporary DNS failure checking the sender's DMARC policy, try again later") // RFC 3463 X.4.3
	case verdict.Disposition() == msgauth.Quarantine:
		targets = toJunk(targets)
	}
	return verdict.AuthResults, targets, nil
}

// verified is what a forwarded copy's ARC set repeats of the verdict; nil without one.
func verified(v *msgauth.Verdict) *deliver.Verified {
	if v == nil {
		return nil
	}
	return &deliver.Verified{Results: v.Results(), Chain: v.ARC}
}

// toJunk returns targets with every mailbox replaced by Junk.
func toJunk(targets []store.Target) []store.Target {
	junk := make([]store.Target, len(targets))
	for i, t := range targets {
		junk[i] = store.Target{AccountID: t.AccountID, Mailbox: store.Junk}
	}
	return junk
}

// withAuthResults returns the message to store: spool's Return-Path line, the
// Authentication-Results field ar (if any), the rest of the trace, the header section
// without the fields that claim our authserv-id (when verifying) and, on the MX port,
// without X-Spam fields, with the filters' changes mods, and the body. The spool itself
// when none of that changes anything.
func (s *session) withAuthResults(spool *deliver.Spool, traceLen int64, ar string, mods []door.HeaderMod) (deliver.Body, error) {
	maxHeader := s.maxHeaderBytes()
	// The first line of the trace is Return-Path (writeTrace).
	var first [512]byte
	n, _ := spool.ReadAt(first[:min(int64(len(first)), traceLen)], 0)
	rpEnd := int64(bytes.Index(first[:n], []byte("\r\n")) + 2)
	if rpEnd < 2 {
		rpEnd = 0
	}

	hdr, err := headerSection(spool, traceLen, maxHeader)
	if err != nil {
		return nil, err
	}
	stripped := hdr
	if v := s.srv.cfg.Verify; v != nil {
		stripped = msgauth.RemoveAuthResults(hdr, v.AuthServID)
	}
	if s.srv.cfg.Role == RoleMX {
		// A sender's own spam verdict is a forgery (door.StripSpamFields); the filters'
		// changes below and the classifier's fields (deliver) come after.
		stripped = door.StripSpamFields(stripped)
	}
	stripped = door.ApplyHeaderMods(stripped, mods)
	if ar == "" && len(stripped) == len(hdr) && len(mods) == 0 {
		return spool, nil // nothing removed, nothing added
	}
	size := spool.Size()
	return newPieces(
		io.NewSectionReader(spool, 0, rpEnd),
		bytesPart([]byte(ar)),
		io.NewSectionReader(spool, rpEnd, traceLen-rpEnd),
		bytesPart(stripped),
		io.NewSectionReader(spool, traceLen+int64(len(hdr)), size-traceLen-int64(len(hdr))),
	), nil
}

// headerSection reads the header section of the message at off in spool, up to and with
// the empty line that ends it (or to the end of a message without a body). The spool holds
// only CRLF line ends (crlfReader), so the section ends at the first CRLF CRLF, counting
// the CRLF that ends the trace before it (a message may start with the empty line).
func headerSection(spool *deliver.Spool, off int64, max int) ([]byte, error) {
	size := spool.Size()
	buf := make([]byte, 0, min(int64(max)+2, size-off+2, 8192))
	chunk := make([]byte, 4096)
	pos := off - 2 // the trace's final CRLF
	for pos < size {
		n, err := spool.ReadAt(chunk[:min(int64(len(chunk)), size-pos)], pos)
		buf = append(buf, chunk[:n]...)
		pos += int64(n)
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[2 : i+4], nil
		}
		if len(buf)-2 > max {
			return nil, msgauth.ErrHeaderTooLarge
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
	}
	if len(buf)-2 > max {
		return nil, msgauth.ErrHeaderTooLarge
	}
	return buf[2:], nil
}

// pieces is a deliver.Body made of consecutive parts.
type pieces struct {
	parts []*io.SectionReader
	size  int64
}

func newPieces(parts ...*io.SectionReader) *pieces {
	p := &pieces{}
	for _, sr := range parts {
		if sr.Size() > 0 {
			p.parts = append(p.parts, sr)
			p.size += sr.Size()
		}
	}
	return p
}

func (p *pieces) Size() int64 { return p.size }

// bytesPart is b as a part of pieces.
func bytesPart(b []byte) *io.SectionReader {
	return io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))
}

func (p *pieces) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("smtpd: negative offset")
	}
	n := 0
	for _, part := range p.parts {
		if len(b) == 0 {
			break
		}
		if off >= part.Size() {
			off -= part.Size()
			continue
		}
		m, err := part.ReadAt(b[:min(int64(len(b)), part.Size()-off)], off)
		n += m
		b = b[m:]
		off = 0
		if err != nil && err != io.EOF {
			return n, err
		}
	}
	if len(b) > 0 {
		return n, io.EOF
	}
	return n, nil
}
