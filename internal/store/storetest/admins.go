package storetest

import (
	"context"
	"errors"
	"testing"

	"petrel/internal/store"
)

// RunAdmins tests a store.Admins on a store that also keeps the accounts.
func RunAdmins(t *testing.T, st interface {
	store.Directory
	store.Admins
}) {
	ctx := context.Background()
	if err := st.AddDomain(ctx, "admins.test"); err != nil {
		t.Fatal(err)
	}
	a, err := st.AddAccount(ctx, "op@admins.test", store.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.AddAccount(ctx, "user@admins.test", store.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(id int64, want bool) {
		t.Helper()
		if got, err := st.IsAdmin(ctx, id); err != nil || got != want {
			t.Errorf("IsAdmin(%d) = %v, %v; want %v", id, got, err, want)
		}
	}
	check(a.ID, false) // a new account is no admin
	if err := st.SetAdmin(ctx, a.ID, true); err != nil {
		t.Fatal(err)
	}
	check(a.ID, true)
	check(b.ID, false)
	if err := st.SetAdmin(ctx, a.ID, false); err != nil {
		t.Fatal(err)
	}
	check(a.ID, false)
	if err := st.SetAdmin(ctx, 1<<40, true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetAdmin of no account: %v", err)
	}
	if _, err := st.IsAdmin(ctx, 1<<40); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IsAdmin of no account: %v", err)
	}
	// An account deleted and made again under the same address starts as no admin.
	st.SetAdmin(ctx, b.ID, true)
	if err := st.DeleteAccount(ctx, "user@admins.test"); err != nil {
		t.Fatal(err)
	}
	b2, err := st.AddAccount(ctx, "user@admins.test", store.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	check(b2.ID, false)
}
