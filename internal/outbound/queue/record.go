package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/mail/deliver"
	"petrel/internal/outbound/dsn"
	"petrel/internal/outbound/smtpclient"
	"petrel/internal/store"
)

// Replies the queue makes itself (Local: the DSN reports them as our diagnosis).
var (
	replyBounced = smtpclient.Reply{Code: 550, Enhanced: "5.0.0", Text: "returned to the sender by the postmaster", Local: true}
	replyNoReply = smtpclient.Reply{Code: 451, Enhanced: "4.4.0", Text: "no reply for this recipient", Local: true}
)

// record decides the fate of every recipient of e after an attempt that gave res for the
// recipients in sent (the others were marked for bouncing), sends the DSNs, and records the
// outcome. bodyErr means the attempt could not even read the message.
func (q *Queue) record(ctx context.Context, e store.QueueEntry, body []byte, sent []store.QueueRecipient, res smtpclient.Result, bodyErr error) {
	now := q.cfg.Now()
	replies := make(map[int64]smtpclient.Reply, len(sent))
	for i, r := range sent {
		if i < len(res.Recipients) {
			replies[r.ID] = res.Recipients[i]
		}
	}
	var failed, delayed, succeeded []dsn.Recipient
	updates := make([]store.QueueUpdate, 0, len(e.Recipients))
	for _, r := range e.Recipients {
		rep, ok := replies[r.ID]
		switch {
		case bodyErr != nil:
			rep = smtpclient.Reply{Code: 451, Enhanced: "4.3.0", Text: bodyErr.Error(), Local: true}
		case r.Bounce:
			rep = replyBounced
		case !ok:
			rep = replyNoReply
		}
		notify, _ := dsn.ParseNotify(r.Notify) // checked at RCPT; a bad one acts as none
		rec := dsn.Recipient{Address: r.Address, Original: r.ORcpt, OriginalType: r.ORcptType,
			Status: rep.Enhanced, LastAttempt: now}
		if rep.Local {
			rec.Reason = rep.Text
		} else {
			rec.RemoteMTA = res.Host
			rec.Diagnostic = rep.String()
		}
		// One line per recipient and outcome in the mail log. Not q.log.With: a derived
		// logger formats its fields up front, which for one line only costs more.
		logInfo := func(msg string, more ...any) {
			q.log.Info(msg, append([]any{"entry", e.ID, "from", e.MailFrom, "rcpt", r.Address, "attempts", r.Attempts + 1,
				"host", res.Host, "reply", rep.String()}, more...)...)
		}
		switch {
		case rep.Delivered():
			updates = append(updates, store.QueueUpdate{RecipientID: r.ID, Done: true})
			logInfo("queue: delivered", "tls", res.TLS)
			q.cfg.Metrics.Attempt("delivered")
			if notify&dsn.NotifySuccess != 0 {
				rec.Action = dsn.Delivered
				if !res.DSN {
					// The far side does not speak DSN: it will not tell, so we say we
					// relayed it (RFC 3461 §5.2.2).
					rec.Action = dsn.Relayed
				}
				succeeded = append(succeeded, rec)
			}
		case rep.Permanent():
			updates = append(updates, store.QueueUpdate{RecipientID: r.ID, Done: true})
			logInfo("queue: bounced")
			q.cfg.Metrics.Attempt("bounced")
			rec.Action = dsn.Failed
			if notify.Wants(dsn.Failed) {
				failed = append(failed, rec)
			}
		default:
			next, expired := q.cfg.Schedule.Next(e.Created, now, r.Attempts+1)
			if expired {
				updates = append(updates, store.QueueUpdate{RecipientID: r.ID, Done: true})
				logInfo("queue: expired")
				q.cfg.Metrics.Attempt("expired")
				rec.Action = dsn.Failed
				rec.Status = "5.4.7" // RFC 3463: delivery time expired (class 5: it failed)
				rec.Reason = "gave up after " + age(now.Sub(e.Created)) + "; last error: " + rep.String()
				rec.Diagnostic = ""
				if notify.Wants(dsn.Failed) {
					failed = append(failed, rec)
				}
				break
			}
			u := store.QueueUpdate{RecipientID: r.ID, NextAttempt: next, LastError: rep.String(), Warned: r.Warned}
			logInfo("queue: deferred", "next", next)
			q.cfg.Metrics.Attempt("deferred")
			if !r.Warned && q.cfg.Schedule.Warn(e.Created, now) && notify.Wants(dsn.Delayed) {
				rec.Action = dsn.Delayed
				rec.WillRetryUntil = e.Created.Add(q.cfg.Schedule.Expire)
				delayed = append(delayed, rec)
				u.Warned = true
			}
			updates = append(updates, u)
		}
	}
	// The notices first, then the record: a crash between them repeats a notice, never
	// loses one.
	var hdr mail.Header // parsed only when a notice goes out: most attempts send none
	if len(failed)+len(delayed)+len(succeeded) > 0 {
		hdr = header(body)
	}
	if len(failed) > 0 {
		q.notify(ctx, e, body, hdr, failed, true)
	}
	if len(delayed) > 0 {
		q.notify(ctx, e, body, hdr, delayed, false)
	}
	if len(succeeded) > 0 {
		q.notify(ctx, e, body, hdr, succeeded, false)
	}
	if err := q.st.Record(ctx, e.ID, updates); err != nil {
		// The leases run out and the recipients are tried again: a duplicate at worst.
		q.log.Error("queue: recording an attempt", "entry", e.ID, "err", err)
	}
}

// age is a duration for people: whole seconds, or milliseconds below one.
func age(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Truncate(time.Second).String()
}

// header parses the header section of a queued message for dsn.Decide; a message that does
// not parse has no header fields.
func header(body []byte) mail.Header {
	m, err := mail.ReadMessage(bytes.NewReader(body))
	if err != nil {
		return mail.Header{}
	}
	return m.Header
}

// notify sends one DSN about recipients of e. failure says the DSN reports failures, which
// alone may go to the postmaster (a double bounce); other notices about a bounce or an
// auto-reply are dropped.
func (q *Queue) notify(ctx context.Context, e store.QueueEntry, body []byte, hdr mail.Header, recips []dsn.Recipient, failure bool) {
	to, double := e.MailFrom, false
	switch dsn.Decide(e.MailFrom, hdr) {
	case dsn.Discard:
		q.log.Warn("queue: a double bounce failed; dropped", "entry", e.ID)
		return
	case dsn.ToPostmaster:
		if !failure {
			return
		}
		to, double = q.cfg.Postmaster, true
	}
	ret, _ := dsn.ParseReturn(e.Ret)
	rep := &dsn.Report{ReportingMTA: q.cfg.Hostname, To: to, EnvelopeID: e.EnvID, ArrivalDate: e.Created,
		Recipients: recips, Return: ret, SMTPUTF8: e.UTF8Headers, DoubleBounce: double, Date: q.cfg.Now()}
	var buf bytes.Buffer
	if err := dsn.Write(&buf, rep, bytes.NewReader(body)); err != nil {
		q.log.Error("queue: writing a DSN", "entry", e.ID, "to", to, "err", err)
		return
	}
	if err := q.send(ctx, to, buf.Bytes()); err != nil {
		q.log.Error("queue: sending a DSN", "entry", e.ID, "to", to, "err", err)
		return
	}
	q.cfg.Metrics.DSN(string(recips[0].Action))
	q.log.Info("queue: DSN sent", "entry", e.ID, "to", to, "action", string(recips[0].Action), "recipients", len(recips))
}

// send delivers a DSN (from the null sender) to a local mailbox, or queues it for a remote
// one.
func (q *Queue) send(ctx context.Context, to string, msg []byte) error {
	a, err := address.Parse(to)
	if err != nil {
		return fmt.Errorf("bad address %q: %w", to, err)
	}
	rt, err := q.local.Route(ctx, a)
	switch {
	case err == nil && len(rt.Targets) > 0:
		_, err = q.local.Deliver(ctx, deliver.Envelope{Targets: rt.Targets, ReceivedAt: q.cfg.Now()}, bytes.NewReader(msg))
		return err
	case err == nil && len(rt.Forward) > 0:
		// The sender was an SRS address of ours: the DSN goes to the original sender.
		if a, err = address.Parse(rt.Forward[0].Address); err != nil {
			return fmt.Errorf("bad address %q: %w", rt.Forward[0].Address, err)
		}
		return q.enqueueDSN(ctx, a, msg)
	case errors.Is(err, deliver.ErrNotHosted):
		return q.enqueueDSN(ctx, a, msg)
	case err == nil:
		return fmt.Errorf("%s takes no mail", to)
	default:
		return err
	}
}

// enqueueDSN queues a DSN for a remote address.
func (q *Queue) enqueueDSN(ctx context.Context, a address.Address, msg []byte) error {
	eightBit, utf8Headers, _ := smtpclient.Scan(bytes.NewReader(msg))
	_, err := q.st.Enqueue(ctx, &store.Outbound{EightBit: eightBit, UTF8Headers: utf8Headers,
		// A notice never asks for another (RFC 3461 §6.2).
		Recipients: []store.OutboundRecipient{{Address: a.String(), Domain: a.Domain, Notify: "NEVER"}},
		Body:       bytes.NewReader(msg), Size: int64(len(msg))})
	q.Kick()
	return err
}
