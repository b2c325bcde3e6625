package storetest

import (
	"petrel/internal/store"
	"slices"
	"testing"
	"time"
)

func testDomains(t *testing.T, f *fixture) {
	ctx := f.ctx
	f.domain("b.example")
	f.domain("A.Example") // stored lower-case
	wantErr(t, "AddDomain duplicate", f.s.AddDomain(ctx, "a.example"), store.ErrExists)

	ds, err := f.s.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].Name != "a.example" || ds[1].Name != "b.example" || ds[0].CatchAll != "" {
		t.Errorf("Domains = %+v, want a.example and b.example without catch-all", ds)
	}
	if d, err := f.s.Domain(ctx, "a.example"); err != nil || d.Name != "a.example" {
		t.Errorf("Domain(a.example) = %+v, %v", d, err)
	}
	_, err = f.s.Domain(ctx, "nowhere.example")
	wantErr(t, "Domain missing", err, store.ErrNotFound)
	wantErr(t, "DeleteDomain missing", f.s.DeleteDomain(ctx, "nowhere.example"), store.ErrNotFound)

	f.account("x@a.example")
	wantErr(t, "DeleteDomain with accounts", f.s.DeleteDomain(ctx, "a.example"), store.ErrExists)
	if err := f.s.DeleteAccount(ctx, "x@a.example"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteDomain(ctx, "a.example"); err != nil {
		t.Fatalf("DeleteDomain after its account left: %v", err)
	}
	_, err = f.s.Domain(ctx, "a.example")
	wantErr(t, "Domain deleted", err, store.ErrNotFound)
}

func testAccounts(t *testing.T, f *fixture) {
	ctx := f.ctx
	cred := store.Credentials{PasswordHash: "$argon2id$x", SCRAMSHA256: "scram"}
	_, err := f.s.AddAccount(ctx, "bob@nowhere.example", cred)
	wantErr(t, "AddAccount without domain", err, store.ErrNotFound)

	f.domain("example.org")
	f.domain("example.net")
	before := time.Now().Add(-time.Second)
	a, err := f.s.AddAccount(ctx, "Bob@Example.ORG", cred)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.Address != "bob@example.org" || a.Credentials != cred || a.POP3Delete != store.POP3Delete ||
		a.Created.Before(before) || a.Created.After(time.Now().Add(time.Second)) {
		t.Errorf("AddAccount = %+v", a)
	}
	_, err = f.s.AddAccount(ctx, "bob@example.org", cred)
	wantErr(t, "AddAccount duplicate", err, store.ErrExists)
	c := f.account("carol@example.net")

	got, err := f.s.AccountByAddress(ctx, "BOB@example.org")
	if err != nil || got.ID != a.ID || got.Credentials != cred || !got.Created.Equal(a.Created) {
		t.Errorf("AccountByAddress = %+v, %v; want %+v", got, err, a)
	}
	if got, err := f.s.AccountByID(ctx, a.ID); err != nil || got.Address != a.Address {
		t.Errorf("AccountByID = %+v, %v", got, err)
	}
	_, err = f.s.AccountByAddress(ctx, "nobody@example.org")
	wantErr(t, "AccountByAddress missing", err, store.ErrNotFound)
	_, err = f.s.AccountByID(ctx, a.ID+c.ID+100)
	wantErr(t, "AccountByID missing", err, store.ErrNotFound)

	all, err := f.s.Accounts(ctx, "")
	if err != nil || len(all) != 2 || all[0].Address != "bob@example.org" || all[1].Address != "carol@example.net" {
		t.Errorf(`Accounts("") = %+v, %v`, all, err)
	}
	some, err := f.s.Accounts(ctx, "example.net")
	if err != nil || len(some) != 1 || some[0].ID != c.ID {
		t.Errorf("Accounts(example.net) = %+v, %v", some, err)
	}

	// Default mailboxes, in order, each with its own UIDVALIDITY.
	mbs, err := f.s.Mailboxes(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	seen := map[uint32]bool{}
	for _, m := range mbs {
		names = append(names, m.Name)
		if m.UIDValidity == 0 || seen[m.UIDValidity] || m.UIDNext != 1 || m.Messages != 0 || m.AccountID != a.ID {
			t.Errorf("new mailbox %+v", m)
		}
		seen[m.UIDValidity] = true
	}
	if !slices.Equal(names, store.DefaultMailboxes) {
		t.Errorf("mailboxes %v, want %v", names, store.DefaultMailboxes)
	}

	cred2 := store.Credentials{PasswordHash: "new", SCRAMSHA256: "new-scram"}
	if err := f.s.SetCredentials(ctx, a.ID, cred2); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SetPOP3Delete(ctx, a.ID, store.POP3Archive); err != nil {
		t.Fatal(err)
	}
	got, _ = f.s.AccountByID(ctx, a.ID)
	if got.Credentials != cred2 || got.POP3Delete != store.POP3Archive {
		t.Errorf("after updates: %+v", got)
	}
	if err := f.s.SetPOP3Delete(ctx, a.ID, "shred"); err == nil {
		t.Error("SetPOP3Delete accepted an unknown policy")
	}
	wantErr(t, "SetCredentials missing", f.s.SetCredentials(ctx, a.ID+c.ID+100, cred), store.ErrNotFound)
	wantErr(t, "SetPOP3Delete missing", f.s.SetPOP3Delete(ctx, a.ID+c.ID+100, store.POP3Keep), store.ErrNotFound)
}

func testDeleteAccount(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	only := f.deliver(body1, inbox(a.ID))
	shared := f.deliver(body1, inbox(a.ID), inbox(b.ID))

	wantErr(t, "DeleteAccount missing", f.s.DeleteAccount(ctx, "nobody@example.org"), store.ErrNotFound)
	if err := f.s.DeleteAccount(ctx, "A@example.org"); err != nil {
		t.Fatal(err)
	}
	_, err := f.s.AccountByID(ctx, a.ID)
	wantErr(t, "AccountByID deleted", err, store.ErrNotFound)
	_, err = f.s.Mailboxes(ctx, a.ID)
	wantErr(t, "Mailboxes of deleted account", err, store.ErrNotFound)
	_, err = f.s.Messages(ctx, only.Messages[0].MailboxID, store.Filter{})
	wantErr(t, "Messages of deleted mailbox", err, store.ErrNotFound)
	_, err = f.s.OpenBlob(ctx, only.BlobID)
	wantErr(t, "OpenBlob only a deleted account had", err, store.ErrNotFound)
	if got := f.blob(shared.BlobID); got != body1 {
		t.Errorf("shared blob after deleting one recipient = %q", got)
	}
	if ms := f.messages(f.mailbox(b.ID, store.Inbox).ID); len(ms) != 1 {
		t.Errorf("other account lost messages: %+v", ms)
	}
}

func testAliases(t *testing.T, f *fixture) {
	ctx := f.ctx
	wantErr(t, "AddAlias without domain", f.s.AddAlias(ctx, "x@nowhere.example", []string{"a@example.org"}), store.ErrNotFound)
	f.account("a@example.org")
	f.domain("example.net")
	if err := f.s.AddAlias(ctx, "Info@Example.org", []string{"a@example.org", "Someone@Remote.example"}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.AddAlias(ctx, "sales@example.net", []string{"a@example.org"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "AddAlias duplicate", f.s.AddAlias(ctx, "info@example.org", []string{"a@example.org"}), store.ErrExists)
	wantErr(t, "AddAlias over an account", f.s.AddAlias(ctx, "a@example.org", []string{"x@example.org"}), store.ErrExists)
	_, err := f.s.AddAccount(ctx, "info@example.org", store.Credentials{})
	wantErr(t, "AddAccount over an alias", err, store.ErrExists)
	if err := f.s.AddAlias(ctx, "empty@example.org", nil); err == nil {
		t.Error("AddAlias accepted no targets")
	}

	al, err := f.s.Alias(ctx, "INFO@example.org")
	if err != nil || al.Address != "info@example.org" || !slices.Equal(al.Targets, []string{"a@example.org", "someone@remote.example"}) {
		t.Errorf("Alias = %+v, %v", al, err)
	}
	all, err := f.s.Aliases(ctx, "")
	if err != nil || len(all) != 2 || all[0].Address != "info@example.org" || all[1].Address != "sales@example.net" {
		t.Errorf(`Aliases("") = %+v, %v`, all, err)
	}
	some, err := f.s.Aliases(ctx, "example.net")
	if err != nil || len(some) != 1 || some[0].Address != "sales@example.net" {
		t.Errorf("Aliases(example.net) = %+v, %v", some, err)
	}
	if err := f.s.DeleteAlias(ctx, "info@example.org"); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Alias(ctx, "info@example.org")
	wantErr(t, "Alias deleted", err, store.ErrNotFound)
	wantErr(t, "DeleteAlias missing", f.s.DeleteAlias(ctx, "info@example.org"), store.ErrNotFound)
}

func testCatchAll(t *testing.T, f *fixture) {
	ctx := f.ctx
	f.account("a@example.org")
	wantErr(t, "SetCatchAll missing domain", f.s.SetCatchAll(ctx, "nowhere.example", "a@example.org"), store.ErrNotFound)
	wantErr(t, "SetCatchAll missing account", f.s.SetCatchAll(ctx, "example.org", "nobody@example.org"), store.ErrNotFound)
	if err := f.s.SetCatchAll(ctx, "example.org", "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if d, err := f.s.Domain(ctx, "example.org"); err != nil || d.CatchAll != "a@example.org" {
		t.Errorf("Domain after SetCatchAll = %+v, %v", d, err)
	}
	if err := f.s.SetCatchAll(ctx, "example.org", ""); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.s.Domain(ctx, "example.org"); d.CatchAll != "" {
		t.Errorf("catch-all not cleared: %+v", d)
	}
	// Deleting the catch-all account clears the catch-all.
	if err := f.s.SetCatchAll(ctx, "example.org", "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteAccount(ctx, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.s.Domain(ctx, "example.org"); d.CatchAll != "" {
		t.Errorf("catch-all survives its account: %+v", d)
	}
}
