package smtpd

import (
	"context"
	"time"

	"github.com/emersion/go-smtp"

	"petrel/internal/store"
)

// Sending limits of submission (issue 11 point 5): messages and recipients per clock hour
// and per UTC day, per account; the store keeps the counters so that they survive a
// restart.
//
//   - MAIL reads the account's limits (its override over the default) and usage once; MAIL
//     is refused when the messages are used up, RCPT when one more recipient would pass a
//     recipient limit: 451 4.7.1 (RFC 3463 X.7.1, a policy refusal the client may retry
//     after the reset), with the limit and its reset time in the text. These early checks
//     spare the client sending a body that would be refused.
//   - The count itself is a charge made in the delivery commit (deliver.Envelope.Charge,
//     store.SendingCharge): the store checks and adds in the transaction that accepts the
//     message, so concurrent sessions of one account cannot pass a limit together, and a
//     message is counted exactly when it was accepted, crash or not.
//   - With HardDaily, a daily limit is refused with 550 5.7.1 instead: the client gives up
//     and tells its user rather than retrying until midnight.

// SendingStore keeps the counters and overrides; store.Store implements it. (The
// charge itself goes with the delivery to the store's Deliver.)
type SendingStore interface {
	SendingOverride(ctx context.Context, accountID int64) (store.SendingLimits, error)
	SendingUsage(ctx context.Context, accountID int64, now time.Time) (store.SendingUsage, error)
}

// SendingLimits configures the limits of a RoleSubmission listener.
type SendingLimits struct {
	Store   SendingStore
	Default store.SendingLimits // for accounts without an override; 0 fields: no limit
	// HardDaily refuses a message over a daily limit with 550 5.7.1 instead of 451 4.7.1.
	HardDaily bool
	Now       func() time.Time // the clock; nil means time.Now
}

func (l *SendingLimits) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// sendingTx is what a transaction knows of its account's limits.
type sendingTx struct {
	limits  store.SendingLimits
	usage   store.SendingUsage // at MAIL
	account int64
	active  bool      // limits apply to this transaction
	read    time.Time // when limits and usage were read from the store
}

// sendingReuse is how long a session reuses the limits and usage it read, adding its own
// charges, instead of reading them again at every MAIL (two queries per message were 4% of
// the relay's CPU). Other sessions' charges and an override changed by the CLI are seen
// that much later by the early checks at MAIL and RCPT; the charge in the delivery commit
// checks the stored counters whatever the session believes.
const sendingReuse = time.Second

// cachedSending returns what the session's last accepted message left of the account's
// limits and usage, if it is recent and of now's windows.
func (s *session) cachedSending(account int64, now time.Time) (sendingTx, bool) {
	s.mu.Lock()
	st := s.sending
	s.mu.Unlock()
	hour, day := store.SendingWindows(now)
	if !st.active || st.account != account || now.Sub(st.read) >= sendingReuse || now.Before(st.read) ||
		!st.usage.HourStart.Equal(hour) || !st.usage.DayStart.Equal(day) {
		return sendingTx{}, false
	}
	return st, true
}

// charged keeps the transaction's limits and usage, with its charge added, for the
// session's next MAIL (cachedSending); c is the charge the delivery commit made.
func (s *session) charged(tx *transaction, c *store.SendingCharge) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := tx.sending
	if c == nil || !st.active {
		s.sending = sendingTx{}
		return
	}
	st.usage.HourMessages += c.Messages
	st.usage.HourRecipients += c.Recipients
	st.usage.DayMessages += c.Messages
	st.usage.DayRecipients += c.Recipients
	s.sending = st
}

// limitReply is the refusal for a limit reached: temporary (RFC 3463 X.7.1, the client may
// retry after the reset), or permanent for a daily limit under HardDaily.
func (s *session) limitReply(le *store.LimitError) *smtp.SMTPError {
	if l := s.srv.cfg.Sending; l != nil && l.HardDaily && le.Daily() {
		return reply(550, 5, 7, 1, le.Error())
	}
	return reply(451, 4, 7, 1, le.Error())
}

// startSending reads the limits and usage of acct for a new transaction and refuses MAIL
// when no message is left.
func (s *session) startSending(tx *transaction, acct store.Account) *smtp.SMTPError {
	l := s.srv.cfg.Sending
	if l == nil {
		return nil
	}
	now := l.now()
	st, ok := s.cachedSending(acct.ID, now)
	if !ok {
		override, err := l.Store.SendingOverride(s.srv.ctx, acct.ID)
		var usage store.SendingUsage
		if err == nil {
			usage, err = l.Store.SendingUsage(s.srv.ctx, acct.ID, now)
		}
		if err != nil {
			s.log.Warn("reading sending limits failed", "user", acct.Address, "err", err)
			return reply(451, 4, 3, 0, "temporary failure, try again later")
		}
		st = sendingTx{limits: override.Apply(l.Default), usage: usage, account: acct.ID, active: true, read: now}
	}
	tx.sending = st
	if le := st.limits.Exceeds(st.usage, 1, 0); le != nil {
		return s.limitReply(le)
	}
	return nil
}

// checkRcptSending refuses a recipient that would pass a recipient limit, counting the
// ones the transaction already has.
func (s *session) checkRcptSending(tx *transaction) *smtp.SMTPError {
	s.mu.Lock()
	st, n := tx.sending, len(tx.rcpts)
	s.mu.Unlock()
	if !st.active {
		return nil
	}
	if le := st.limits.Exceeds(st.usage, 0, n+1); le != nil {
		return s.limitReply(le)
	}
	return nil
}

// sendingCharge is the charge of the message and its recipients, to be made in the delivery
// commit; nil when no limits apply.
func (s *session) sendingCharge(tx *transaction, rcpts int) *store.SendingCharge {
	l := s.srv.cfg.Sending
	s.mu.Lock()
	st := tx.sending
	s.mu.Unlock()
	if l == nil || !st.active {
		return nil
	}
	return &store.SendingCharge{AccountID: st.account, Now: l.now(), Messages: 1, Recipients: rcpts, Limits: st.limits}
}
