package deliver

import (
	"bytes"
	"context"
	"io"
	"strings"

	"petrel/internal/mail/junk"
	"petrel/internal/mail/message"
	"petrel/internal/store"
)

// Junk classification at delivery (issue 13 point 1). A message whose Envelope asks for it
// (mail from outside, the MX port) is scored for each account it reaches, with that
// account's counts; an account's INBOX targets become its Junk when the score reaches the
// account's threshold. Other targets (a folder a rule chose, Junk already after a DMARC
// quarantine) stay.
//
// The verdict goes into the stored message as X-Spam-* fields, after the Return-Path line.
// A body is stored once for all its recipients (store.Delivery), so the fields are added
// only when every target is in one account, which is every message sent to one address;
// a message to several accounts is filed per account, without the fields, rather than
// telling each recipient the others' verdicts or storing the body once per account.

// SetJunk makes Deliver classify the messages whose Envelope sets Classify; nil turns it
// off.
func (d *Deliverer) SetJunk(f *junk.Filter) { d.junk = f }

// classify applies the junk filter to a delivery. It returns the targets (INBOX replaced by
// Junk where the verdict is junk), and the body and its parse with the verdict's fields
// when they were added. A failure of the filter is logged and files the message as if it
// were not junk: a missing verdict must not lose or delay mail.
func (d *Deliverer) classify(ctx context.Context, targets []store.Target, body io.Reader, size int64, pm store.ParsedMessage) ([]store.Target, io.Reader, int64, store.ParsedMessage) {
	var accounts []int64
	for _, t := range targets {
		if !containsID(accounts, t.AccountID) {
			accounts = append(accounts, t.AccountID)
		}
	}
	var header string
	for _, acct := range accounts {
		v, err := d.junk.Classify(ctx, acct, pm.Text)
		if err != nil {
			d.log.Warn("junk classification failed; filed as not junk", "account", acct, "err", err)
			continue
		}
		if len(accounts) == 1 {
			header = v.Header()
		}
		if !v.Junk {
			continue
		}
		for i, t := range targets {
			if t.AccountID == acct && strings.EqualFold(t.Mailbox, store.Inbox) {
				targets[i].Mailbox = store.Junk
			}
		}
	}
	targets = dedupe(targets)
	if header == "" {
		return targets, body, size, pm
	}
	shifted, err := message.Prepended(pm, int64(len(header)))
	if err != nil {
		d.log.Warn("junk verdict not added to the message", "err", err)
		return targets, body, size, pm
	}
	return targets, withField(body, size, header), size + int64(len(header)), shifted
}

// withField returns body with the header fields f after its first line when that is the
// Return-Path our SMTP session writes (RFC 5321 §4.4 wants it first), else before it.
func withField(body io.Reader, size int64, f string) io.Reader {
	ra, ok := body.(io.ReaderAt)
	if !ok {
		return io.MultiReader(strings.NewReader(f), body)
	}
	var first [512]byte
	n, _ := ra.ReadAt(first[:min(int64(len(first)), size)], 0)
	at := int64(0)
	if bytes.HasPrefix(first[:n], []byte("Return-Path:")) {
		if i := bytes.Index(first[:n], []byte("\r\n")); i >= 0 {
			at = int64(i + 2)
		}
	}
	return io.MultiReader(io.NewSectionReader(ra, 0, at), strings.NewReader(f), io.NewSectionReader(ra, at, size-at))
}

func containsID(l []int64, id int64) bool {
	for _, x := range l {
		if x == id {
			return true
		}
	}
	return false
}

// dedupe removes repeated targets (an account's INBOX turned Junk next to its Junk).
func dedupe(targets []store.Target) []store.Target {
	out := targets[:0]
	seen := make(map[store.Target]bool, len(targets))
	for _, t := range targets {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
