package smtpd

import (
	"context"
	"errors"
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
//   - The count itself is ChargeSending at the end of DATA, before the delivery commit:
//     the store checks and adds in one commit, so concurrent sessions of one account
//     cannot pass a limit together. Charging first means a crash between the two commits
//     counts a message that was never accepted (the client retries it and it is counted
//     again), never the reverse: the counters cannot undercount. A delivery that fails
//     gives the charge back.

// SendingStore keeps the counters and overrides; store.Store implements it.
type SendingStore interface {
	SendingOverride(ctx context.Context, accountID int64) (store.SendingLimits, error)
	SendingUsage(ctx context.Context, accountID int64, now time.Time) (store.SendingUsage, error)
	ChargeSending(ctx context.Context, accountID int64, now time.Time, messages, recipients int, limits store.SendingLimits) (store.SendingUsage, error)
}

// SendingLimits configures the limits of a RoleSubmission listener.
type SendingLimits struct {
	Store   SendingStore
	Default store.SendingLimits // for accounts without an override; 0 fields: no limit
	Now     func() time.Time    // the clock; nil means time.Now
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
	active  bool // limits apply to this transaction

	chargedAt    time.Time // when DATA charged the counters; zero if it did not
	chargedRcpts int
}

// limitReply is the refusal for a limit reached.
func limitReply(le *store.LimitError) *smtp.SMTPError {
	return reply(451, 4, 7, 1, le.Error())
}

// startSending reads the limits and usage of acct for a new transaction and refuses MAIL
// when no message is left.
func (s *session) startSending(tx *transaction, acct store.Account) *smtp.SMTPError {
	l := s.srv.cfg.Sending
	if l == nil {
		return nil
	}
	override, err := l.Store.SendingOverride(s.srv.ctx, acct.ID)
	var usage store.SendingUsage
	if err == nil {
		usage, err = l.Store.SendingUsage(s.srv.ctx, acct.ID, l.now())
	}
	if err != nil {
		s.srv.log.Warn("reading sending limits failed", "user", acct.Address, "err", err)
		return reply(451, 4, 3, 0, "temporary failure, try again later")
	}
	tx.sending = sendingTx{limits: override.Apply(l.Default), usage: usage, account: acct.ID, active: true}
	if le := tx.sending.limits.Exceeds(usage, 1, 0); le != nil {
		return limitReply(le)
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
		return limitReply(le)
	}
	return nil
}

// chargeSending counts the message and its recipients before the delivery commit.
func (s *session) chargeSending(ctx context.Context, tx *transaction, rcpts int) *smtp.SMTPError {
	l := s.srv.cfg.Sending
	s.mu.Lock()
	st := tx.sending
	s.mu.Unlock()
	if l == nil || !st.active {
		return nil
	}
	now := l.now()
	_, err := l.Store.ChargeSending(ctx, st.account, now, 1, rcpts, st.limits)
	var le *store.LimitError
	switch {
	case errors.As(err, &le):
		return limitReply(le)
	case err != nil:
		s.srv.log.Warn("counting a message for the sending limits failed", "msgid", tx.id, "err", err)
		return reply(451, 4, 3, 0, "temporary failure, try again later")
	}
	s.mu.Lock()
	tx.sending.chargedAt, tx.sending.chargedRcpts = now, rcpts
	s.mu.Unlock()
	return nil
}

// refundSending gives back the charge of a message whose delivery failed. A failure here
// leaves the counters one message high, which errs on the safe side.
func (s *session) refundSending(tx *transaction) {
	l := s.srv.cfg.Sending
	s.mu.Lock()
	st := tx.sending
	s.mu.Unlock()
	if l == nil || st.chargedAt.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Store.ChargeSending(ctx, st.account, st.chargedAt, -1, -st.chargedRcpts, store.SendingLimits{}); err != nil {
		s.srv.log.Warn("giving back a sending-limit charge failed", "msgid", tx.id, "err", err)
	}
}
