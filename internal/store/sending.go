package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Sending limits (issue 11, point 5): how much an account may submit per clock hour and
// per UTC day. The counters are fixed windows, not sliding ones, so that a refusal can say
// exactly when the limit resets (the next full hour, the next midnight UTC) and so that a
// backend keeps two rows per account rather than a log of every message.
//
// The rules (windows, which limit a charge exceeds) live here so that every backend
// applies the same ones; a backend only stores the counters and charges them atomically.

// SendingLimits caps what one account submits. A value of 0 means no limit.
type SendingLimits struct {
	HourMessages   int
	HourRecipients int
	DayMessages    int
	DayRecipients  int
}

// Inherit, in a SendingLimits used as an account's override, means "the server's default
// for this limit".
const Inherit = -1

// NoOverride is the override of an account that has none: every limit inherited.
var NoOverride = SendingLimits{Inherit, Inherit, Inherit, Inherit}

// Apply returns the limits that hold for an account: each field of the override o that is
// not Inherit, else the default's.
func (o SendingLimits) Apply(def SendingLimits) SendingLimits {
	pick := func(v, d int) int {
		if v < 0 {
			return d
		}
		return v
	}
	return SendingLimits{
		HourMessages:   pick(o.HourMessages, def.HourMessages),
		HourRecipients: pick(o.HourRecipients, def.HourRecipients),
		DayMessages:    pick(o.DayMessages, def.DayMessages),
		DayRecipients:  pick(o.DayRecipients, def.DayRecipients),
	}
}

// SendingUsage is what an account submitted in the current hour and day.
type SendingUsage struct {
	HourStart      time.Time // the start of the current clock hour (UTC)
	DayStart       time.Time // midnight UTC of the current day
	HourMessages   int
	HourRecipients int
	DayMessages    int
	DayRecipients  int
}

// SendingWindows returns the start of the hour and of the day (UTC) that now falls in.
func SendingWindows(now time.Time) (hour, day time.Time) {
	now = now.UTC()
	return now.Truncate(time.Hour), time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
}

// LimitError says which limit a charge would exceed and when that limit resets.
type LimitError struct {
	Limit   string    // "messages per hour", "recipients per hour", "messages per day", "recipients per day"
	Max     int       // the limit
	ResetAt time.Time // when the window ends (UTC)
}

// Daily reports whether the limit is one of a day (it resets at midnight UTC, not within
// the hour).
func (e *LimitError) Daily() bool { return strings.HasSuffix(e.Limit, "per day") }

func (e *LimitError) Error() string {
	return fmt.Sprintf("sending limit of %d %s reached; it resets at %s", e.Max, e.Limit,
		e.ResetAt.UTC().Format("2006-01-02 15:04 MST"))
}

// Exceeds reports the first limit of l that adding messages and recipients to u would
// exceed, or nil. Only positive charges can exceed a limit.
func (l SendingLimits) Exceeds(u SendingUsage, messages, recipients int) *LimitError {
	hourEnd, dayEnd := u.HourStart.Add(time.Hour), u.DayStart.AddDate(0, 0, 1)
	checks := []struct {
		max, used, add int
		name           string
		reset          time.Time
	}{
		{l.HourMessages, u.HourMessages, messages, "messages per hour", hourEnd},
		{l.HourRecipients, u.HourRecipients, recipients, "recipients per hour", hourEnd},
		{l.DayMessages, u.DayMessages, messages, "messages per day", dayEnd},
		{l.DayRecipients, u.DayRecipients, recipients, "recipients per day", dayEnd},
	}
	for _, c := range checks {
		if c.max > 0 && c.add > 0 && c.used+c.add > c.max {
			return &LimitError{Limit: c.name, Max: c.max, ResetAt: c.reset}
		}
	}
	return nil
}

// Sending keeps the sending-limit overrides and counters of accounts. A missing account
// is ErrNotFound.
type Sending interface {
	// SendingOverride returns the account's own limits (NoOverride if it has none).
	SendingOverride(ctx context.Context, accountID int64) (SendingLimits, error)
	// SetSendingOverride stores the account's own limits; NoOverride removes them.
	SetSendingOverride(ctx context.Context, accountID int64, o SendingLimits) error
	// SendingUsage returns the account's counters for the windows that now falls in (zero
	// for a window nothing was charged in).
	SendingUsage(ctx context.Context, accountID int64, now time.Time) (SendingUsage, error)
	// ChargeSending adds messages and recipients to the account's counters for now's
	// windows, in one durable commit, unless that would exceed limits: then nothing is
	// added and the error is a *LimitError. The check and the addition are atomic, so
	// concurrent submissions cannot together pass a limit. Negative amounts give back a
	// charge (a message that failed after being charged); counters never go below zero,
	// and a charge of an earlier window is not given back.
	ChargeSending(ctx context.Context, accountID int64, now time.Time, messages, recipients int, limits SendingLimits) (SendingUsage, error)
}

// SendingCharge is a sending-limit charge made in the commit of a delivery
// (Delivery.Charge): the store adds Messages and Recipients to the account's counters for
// Now's windows in the same transaction as the message, unless that would exceed Limits;
// then it commits nothing of the delivery and returns the *LimitError. So a message is
// counted if and only if it was accepted, even across a crash.
type SendingCharge struct {
	AccountID            int64
	Now                  time.Time
	Messages, Recipients int
	Limits               SendingLimits
}

// SendingRow is one stored counter of an account: a period ("hour" or "day") that started at
// Start (unix seconds). Both backends keep these rows and share the arithmetic below.
type SendingRow struct {
	Period               string
	Start                int64
	Messages, Recipients int
}

// UsageOf is the usage in now's windows given an account's stored rows; rows of an older
// window count for nothing.
func UsageOf(rows []SendingRow, now time.Time) SendingUsage {
	hour, day := SendingWindows(now)
	u := SendingUsage{HourStart: hour, DayStart: day}
	for _, r := range rows {
		switch {
		case r.Period == "hour" && r.Start == hour.Unix():
			u.HourMessages, u.HourRecipients = r.Messages, r.Recipients
		case r.Period == "day" && r.Start == day.Unix():
			u.DayMessages, u.DayRecipients = r.Messages, r.Recipients
		}
	}
	return u
}

// Apply charges c to the usage u: over a limit it returns u and the *LimitError; else the new
// usage and the rows to store.
func (c *SendingCharge) Apply(u SendingUsage) (SendingUsage, []SendingRow, error) {
	if lerr := c.Limits.Exceeds(u, c.Messages, c.Recipients); lerr != nil {
		return u, nil, lerr
	}
	u.HourMessages = max(0, u.HourMessages+c.Messages)
	u.HourRecipients = max(0, u.HourRecipients+c.Recipients)
	u.DayMessages = max(0, u.DayMessages+c.Messages)
	u.DayRecipients = max(0, u.DayRecipients+c.Recipients)
	return u, []SendingRow{
		{"hour", u.HourStart.Unix(), u.HourMessages, u.HourRecipients},
		{"day", u.DayStart.Unix(), u.DayMessages, u.DayRecipients},
	}, nil
}
