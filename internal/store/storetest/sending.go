package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"petrel/internal/store"
)

// testSendingOverride: an account without an override inherits everything; an override
// is stored field by field, and NoOverride removes it.
func testSendingOverride(t *testing.T, f *fixture) {
	a := f.account("send@a.example")
	o, err := f.s.SendingOverride(f.ctx, a.ID)
	if err != nil || o != store.NoOverride {
		t.Fatalf("SendingOverride of a new account = %+v, %v; want NoOverride", o, err)
	}
	want := store.SendingLimits{HourMessages: 10, HourRecipients: store.Inherit, DayMessages: 0, DayRecipients: 500}
	if err := f.s.SetSendingOverride(f.ctx, a.ID, want); err != nil {
		t.Fatal(err)
	}
	if o, err := f.s.SendingOverride(f.ctx, a.ID); err != nil || o != want {
		t.Errorf("SendingOverride = %+v, %v; want %+v", o, err, want)
	}
	if err := f.s.SetSendingOverride(f.ctx, a.ID, store.NoOverride); err != nil {
		t.Fatal(err)
	}
	if o, err := f.s.SendingOverride(f.ctx, a.ID); err != nil || o != store.NoOverride {
		t.Errorf("SendingOverride after removal = %+v, %v", o, err)
	}
	_, err = f.s.SendingOverride(f.ctx, a.ID+1000)
	wantErr(t, "SendingOverride of a missing account", err, store.ErrNotFound)
	wantErr(t, "SetSendingOverride of a missing account", f.s.SetSendingOverride(f.ctx, a.ID+1000, want), store.ErrNotFound)
}

// testChargeSending: charges add up within a window, a charge over a limit adds nothing
// and says which limit and when it resets, a new hour starts from zero while the day
// keeps counting, and a negative charge gives back.
func testChargeSending(t *testing.T, f *fixture) {
	a := f.account("charge@a.example")
	other := f.account("other@a.example")
	at := time.Date(2026, 12, 7, 11, 20, 0, 0, time.UTC)
	limits := store.SendingLimits{HourMessages: 3, DayRecipients: 10}
	charge := func(now time.Time, msgs, rcpts int) (store.SendingUsage, error) {
		t.Helper()
		return f.s.ChargeSending(f.ctx, a.ID, now, msgs, rcpts, limits)
	}
	for i := range 3 {
		u, err := charge(at.Add(time.Duration(i)*time.Minute), 1, 2)
		if err != nil {
			t.Fatalf("charge %d: %v", i+1, err)
		}
		if u.HourMessages != i+1 || u.DayRecipients != 2*(i+1) {
			t.Errorf("charge %d: usage %+v", i+1, u)
		}
	}
	_, err := charge(at.Add(5*time.Minute), 1, 1)
	var le *store.LimitError
	if !errors.As(err, &le) || le.Limit != "messages per hour" || le.Max != 3 || !le.ResetAt.Equal(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("fourth charge: %v (%+v), want the hourly message limit resetting at 12:00", err, le)
	}
	u, err := f.s.SendingUsage(f.ctx, a.ID, at.Add(6*time.Minute))
	if err != nil || u.HourMessages != 3 || u.HourRecipients != 6 || u.DayMessages != 3 {
		t.Errorf("usage after the refusal = %+v, %v; the refused charge must add nothing", u, err)
	}
	if u, _ := f.s.SendingUsage(f.ctx, other.ID, at); u.DayMessages != 0 {
		t.Errorf("another account's usage = %+v", u)
	}

	// The next hour: the hourly counters start again, the daily ones go on.
	next := at.Add(time.Hour)
	u, err = charge(next, 1, 4)
	if err != nil || u.HourMessages != 1 || u.DayMessages != 4 || u.DayRecipients != 10 {
		t.Fatalf("charge in the next hour = %+v, %v", u, err)
	}
	_, err = charge(next, 1, 1)
	if !errors.As(err, &le) || le.Limit != "recipients per day" || !le.ResetAt.Equal(time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("charge over the daily recipients: %v", err)
	}
	// Giving back: counters go down, never below zero.
	if u, err = f.s.ChargeSending(f.ctx, a.ID, next, -1, -20, store.SendingLimits{}); err != nil || u.HourMessages != 0 || u.HourRecipients != 0 || u.DayRecipients != 0 || u.DayMessages != 3 {
		t.Errorf("give back = %+v, %v", u, err)
	}
	// A new day: everything starts from zero.
	if u, err = f.s.SendingUsage(f.ctx, a.ID, at.AddDate(0, 0, 1)); err != nil || u != (store.SendingUsage{HourStart: at.AddDate(0, 0, 1).Truncate(time.Hour), DayStart: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)}) {
		t.Errorf("usage the next day = %+v, %v", u, err)
	}
	_, err = f.s.ChargeSending(f.ctx, a.ID+1000, at, 1, 1, limits)
	wantErr(t, "ChargeSending of a missing account", err, store.ErrNotFound)
}

// testChargeSendingConcurrent: concurrent charges never pass a limit together.
func testChargeSendingConcurrent(t *testing.T, f *fixture) {
	a := f.account("busy@a.example")
	now := time.Now()
	limits := store.SendingLimits{HourMessages: 7}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for range 20 {
		wg.Go(func() {
			_, err := f.s.ChargeSending(f.ctx, a.ID, now, 1, 1, limits)
			var le *store.LimitError
			switch {
			case err == nil:
				mu.Lock()
				accepted++
				mu.Unlock()
			case !errors.As(err, &le):
				t.Errorf("ChargeSending: %v", err)
			}
		})
	}
	wg.Wait()
	if accepted != 7 {
		t.Errorf("%d of 20 concurrent charges accepted under a limit of 7", accepted)
	}
}

// testSendingDurable: counters and overrides survive closing and opening the store.
func testSendingDurable(t *testing.T, reopen func() *fixture) {
	f := reopen()
	a := f.account("durable@a.example")
	now := time.Now()
	for range 4 {
		if _, err := f.s.ChargeSending(f.ctx, a.ID, now, 1, 2, store.SendingLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	o := store.SendingLimits{HourMessages: 4, HourRecipients: store.Inherit, DayMessages: store.Inherit, DayRecipients: store.Inherit}
	if err := f.s.SetSendingOverride(f.ctx, a.ID, o); err != nil {
		t.Fatal(err)
	}
	f = reopen()
	u, err := f.s.SendingUsage(f.ctx, a.ID, now)
	if err != nil || u.HourMessages != 4 || u.DayRecipients != 8 {
		t.Errorf("usage after reopening = %+v, %v", u, err)
	}
	if got, err := f.s.SendingOverride(f.ctx, a.ID); err != nil || got != o {
		t.Errorf("override after reopening = %+v, %v", got, err)
	}
	if _, err := f.s.ChargeSending(f.ctx, a.ID, now, 1, 1, o.Apply(store.SendingLimits{})); err == nil {
		t.Error("the fifth message of the hour passed a limit of 4 after reopening")
	}
}

// testDeliveryCharge: a charge made with a delivery (Delivery.Charge) counts exactly when
// the delivery commits: over a limit nothing is delivered or queued and the error is the
// *LimitError; a delivery that fails for another reason charges nothing.
func testDeliveryCharge(t *testing.T, f *fixture) {
	a := f.account("deliver-charge@a.example")
	at := time.Date(2026, 12, 7, 11, 20, 0, 0, time.UTC)
	limits := store.SendingLimits{HourMessages: 2}
	charged := func(local bool) *store.Delivery {
		d := &store.Delivery{Outbound: outbound("Out\r\n\r\nbody\r\n", "x@remote.test"),
			Charge: &store.SendingCharge{AccountID: a.ID, Now: at, Messages: 1, Recipients: 2, Limits: limits}}
		if local {
			d = delivery(body1, inbox(a.ID))
			d.Charge = &store.SendingCharge{AccountID: a.ID, Now: at, Messages: 1, Recipients: 2, Limits: limits}
		}
		return d
	}
	for i, local := range []bool{true, false} {
		if _, err := f.s.Deliver(f.ctx, charged(local)); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	u, err := f.s.SendingUsage(f.ctx, a.ID, at)
	if err != nil || u.HourMessages != 2 || u.HourRecipients != 4 {
		t.Fatalf("usage after two charged deliveries = %+v, %v", u, err)
	}
	entries := func() int {
		es, err := f.s.Entries(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	before, inboxBefore := entries(), len(f.messages(f.mailbox(a.ID, store.Inbox).ID))
	for _, local := range []bool{true, false} {
		_, err := f.s.Deliver(f.ctx, charged(local))
		var le *store.LimitError
		if !errors.As(err, &le) || le.Limit != "messages per hour" {
			t.Errorf("delivery over the limit (local %v): %v, want a *LimitError", local, err)
		}
	}
	if n := entries(); n != before {
		t.Errorf("%d queue entries after refused deliveries, want %d", n, before)
	}
	if n := len(f.messages(f.mailbox(a.ID, store.Inbox).ID)); n != inboxBefore {
		t.Errorf("%d messages in INBOX after refused deliveries, want %d", n, inboxBefore)
	}
	// A delivery failing for another reason (a missing account) charges nothing.
	bad := delivery(body1, inbox(a.ID+1000))
	bad.Charge = &store.SendingCharge{AccountID: a.ID, Now: at.Add(time.Hour), Messages: 1, Recipients: 1, Limits: limits}
	if _, err := f.s.Deliver(f.ctx, bad); err == nil {
		t.Fatal("delivery to a missing account succeeded")
	}
	if u, err := f.s.SendingUsage(f.ctx, a.ID, at.Add(time.Hour)); err != nil || u.HourMessages != 0 {
		t.Errorf("usage after a failed delivery = %+v, %v", u, err)
	}
}
