package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"petrel/internal/store"
)

// RunWebSessions tests a store.WebSessions on a store that also keeps the accounts.
func RunWebSessions(t *testing.T, st interface {
	store.Directory
	store.WebSessions
}) {
	ctx := context.Background()
	if err := st.AddDomain(ctx, "web.test"); err != nil {
		t.Fatal(err)
	}
	a, err := st.AddAccount(ctx, "a@web.test", store.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.AddAccount(ctx, "b@web.test", store.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	for i, ws := range []store.WebSession{
		{ID: "s1", AccountID: a.ID, Created: t0, Seen: t0, Remote: "192.0.2.1"},
		{ID: "s2", AccountID: a.ID, Created: t0.Add(time.Minute), Seen: t0.Add(time.Minute), Remote: "192.0.2.2"},
		{ID: "s3", AccountID: b.ID, Created: t0.Add(2 * time.Minute), Seen: t0.Add(2 * time.Minute), Remote: "2001:db8::1"},
	} {
		if err := st.AddWebSession(ctx, ws); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	exists := func(id string, want bool) {
		t.Helper()
		if got, err := st.WebSessionExists(ctx, id); err != nil || got != want {
			t.Errorf("WebSessionExists(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
	exists("s1", true)
	exists("nope", false)
	if ws, err := st.WebSession(ctx, "s3"); err != nil || ws.AccountID != b.ID || ws.Address != "b@web.test" ||
		!ws.Created.Equal(t0.Add(2*time.Minute)) || !ws.Seen.Equal(t0.Add(2*time.Minute)) || ws.Remote != "2001:db8::1" || ws.ID != "s3" {
		t.Errorf("WebSession(s3) = %+v, %v", ws, err)
	}
	if _, err := st.WebSession(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("WebSession(nope) = %v, want ErrNotFound", err)
	}
	if err := st.TouchWebSession(ctx, "s1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListWebSessions(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("ListWebSessions = %v, %v", list, err)
	}
	if l := list[0]; l.ID != "s1" || l.Address != "a@web.test" || !l.Seen.Equal(t0.Add(time.Hour)) || !l.Created.Equal(t0) || l.Remote != "192.0.2.1" {
		t.Errorf("first session %+v", l)
	}
	if list[2].ID != "s3" || list[2].Address != "b@web.test" {
		t.Errorf("last session %+v", list[2])
	}
	// By id, by account, then all.
	if n, err := st.RevokeWebSessions(ctx, 0, "s2"); n != 1 || err != nil {
		t.Errorf("revoke s2: %d, %v", n, err)
	}
	exists("s2", false)
	exists("s1", true)
	if n, err := st.RevokeWebSessions(ctx, a.ID, ""); n != 1 || err != nil {
		t.Errorf("revoke a's: %d, %v", n, err)
	}
	exists("s1", false)
	exists("s3", true)
	// Deleting the account deletes its sessions.
	if err := st.DeleteAccount(ctx, b.Address); err != nil {
		t.Fatal(err)
	}
	exists("s3", false)
	if err := st.AddWebSession(ctx, store.WebSession{ID: "s4", AccountID: a.ID, Created: t0, Seen: t0}); err != nil {
		t.Fatal(err)
	}
	if n, err := st.RevokeWebSessions(ctx, 0, ""); n != 1 || err != nil {
		t.Errorf("revoke all: %d, %v", n, err)
	}
	if list, err := st.ListWebSessions(ctx); len(list) != 0 || err != nil {
		t.Errorf("after revoking all: %v, %v", list, err)
	}
}
