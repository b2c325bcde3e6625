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
// A body is stored once for all its recipients (store.Delivery). A message to one account
// carries the fields in that body; one to several accounts carries each account's own
// verdict through the store's spliced copies (store.FieldDeliverer): the body is stored
// once, and each account's copy is that body with its fields inserted, so that no account
// sees another's verdict and none pays for a body of its own. A store without spliced copies
// files the message per account without the fields.

// SetJunk makes Deliver classify the messages whose Envelope sets Classify; nil turns it
// off.
func (d *Deliverer) SetJunk(f *junk.Filter) { d.junk = f }

// classified is what the junk filter made of a delivery.
type classified struct {
	targets []store.Target // INBOX replaced by Junk where the verdict is junk
	// body, size and parsed are the message to store: with the verdict's fields when the
	// delivery reaches one account, else as it came.
	body   io.Reader
	size   int64
	parsed store.ParsedMessage
	// fields are each account's verdict fields when the delivery reaches several accounts
	// and the store keeps them per account (store.FieldDeliverer).
	fields []store.AccountFields
}

// classify applies the junk filter to a delivery. A failure of the filter is logged and
// files the message as if it were not junk: a missing verdict must not lose or delay mail.
func (d *Deliverer) classify(ctx context.Context, targets []store.Target, body Body, pm store.ParsedMessage) classified {
	out := classified{body: io.NewSectionReader(body, 0, body.Size()), size: body.Size(), parsed: pm}
	var accounts []int64
	for _, t := range targets {
		if !containsID(accounts, t.AccountID) {
			accounts = append(accounts, t.AccountID)
		}
	}
	_, perAccount := d.st.(store.FieldDeliverer)
	at := fieldOffset(body, body.Size())
	var header string
	for _, acct := range accounts {
		v, err := d.junk.Classify(ctx, acct, pm.Text)
		if err != nil {
			d.log.Warn("junk classification failed; filed as not junk", "account", acct, "err", err)
			continue
		}
		switch h := v.Header(); {
		case len(accounts) == 1:
			header = h
		case perAccount:
			shifted, err := message.Prepended(pm, int64(len(h)))
			if err != nil {
				d.log.Warn("junk verdict not added to the message", "account", acct, "err", err)
				break
			}
			out.fields = append(out.fields, store.AccountFields{AccountID: acct, Fields: h, At: at, Parsed: shifted})
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
	out.targets = dedupe(targets)
	if header == "" {
		return out
	}
	shifted, err := message.Prepended(pm, int64(len(header)))
	if err != nil {
		d.log.Warn("junk verdict not added to the message", "err", err)
		return out
	}
	out.body = io.MultiReader(io.NewSectionReader(body, 0, at), strings.NewReader(header), io.NewSectionReader(body, at, body.Size()-at))
	out.size += int64(len(header))
	out.parsed = shifted
	return out
}

// fieldOffset is where header fields we add go into body: after its first line when that
// is the Return-Path our SMTP session writes (RFC 5321 §4.4 wants it first), else at 0.
func fieldOffset(body io.ReaderAt, size int64) int64 {
	var first [512]byte
	n, _ := body.ReadAt(first[:min(int64(len(first)), size)], 0)
	if bytes.HasPrefix(first[:n], []byte("Return-Path:")) {
		if i := bytes.Index(first[:n], []byte("\r\n")); i >= 0 {
			return int64(i + 2)
		}
	}
	return 0
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
