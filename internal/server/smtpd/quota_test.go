package smtpd

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"petrel/internal/mail/deliver"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// quotaServer runs an MX server over a real store and deliver, with the accounts
// full@example.test (a limit of 2 messages) and roomy@example.test (no limit).
func quotaServer(t *testing.T) (addr string, st *sqlite.Store, full, roomy store.Account) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "petrel.db"), sqlite.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if full, err = st.AddAccount(ctx, "full@example.test", store.Credentials{}); err != nil {
		t.Fatal(err)
	}
	if roomy, err = st.AddAccount(ctx, "roomy@example.test", store.Credentials{}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetQuota(ctx, full.ID, store.QuotaLimits{Storage: store.QuotaDefault, Messages: 2}); err != nil {
		t.Fatal(err)
	}
	srv := New(Config{Hostname: "mx.example.test"}, deliver.New(st, log), nil, log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return l.Addr().String(), st, full, roomy
}

// fillQuota delivers one message to full@example.test.
func fillQuota(t *testing.T, addr string) {
	t.Helper()
	c := dial(t, addr)
	c.Run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<x@elsewhere.example>
		S: 250
		C: RCPT TO:<full@example.test>
		S: 250
		C: DATA
		S: 354
		C: Subject: fill
		C:
		C: hello
		C: .
		S: 250
	`)
}

func usage(t *testing.T, st *sqlite.Store, a store.Account) int64 {
	t.Helper()
	u, err := st.Usage(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	return u.Messages
}

// TestQuotaAtRcpt: a recipient whose mailbox is full is refused at RCPT with 552 5.2.2,
// and the message still goes to the others of the transaction.
func TestQuotaAtRcpt(t *testing.T) {
	addr, st, full, roomy := quotaServer(t)
	fillQuota(t, addr)
	fillQuota(t, addr)
	c := dial(t, addr)
	c.Run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<x@elsewhere.example>
		S: 250
		C: RCPT TO:<full@example.test>
		S: 552 5.2.2
		C: RCPT TO:<roomy@example.test>
		S: 250
		C: DATA
		S: 354
		C: Subject: to both
		C:
		C: hello
		C: .
		S: 250
		C: QUIT
		S: 221
	`)
	if f, r := usage(t, st, full), usage(t, st, roomy); f != 2 || r != 1 {
		t.Errorf("messages: full %d, roomy %d; want 2 and 1", f, r)
	}
}

// TestQuotaAtRcptSize: the SIZE of MAIL FROM counts at RCPT (RFC 1870).
func TestQuotaAtRcptSize(t *testing.T) {
	addr, st, full, _ := quotaServer(t)
	if err := st.SetQuota(context.Background(), full.ID, store.QuotaLimits{Storage: 10000, Messages: store.QuotaDefault}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	c.Run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<x@elsewhere.example> SIZE=10001
		S: 250
		C: RCPT TO:<full@example.test>
		S: 552 5.2.2
		C: RSET
		S: 250
		C: MAIL FROM:<x@elsewhere.example> SIZE=9000
		S: 250
		C: RCPT TO:<full@example.test>
		S: 250
	`)
}

// TestQuotaAtCommit: a mailbox that fills up between RCPT and the end of DATA is checked
// again in the commit. Alone, its recipient gets 552 5.2.2; with a recipient that still
// has room the whole message is refused with 452 4.2.2 (nothing is stored) so that the
// client retries, and the retry reaches the other recipient.
func TestQuotaAtCommit(t *testing.T) {
	addr, st, full, roomy := quotaServer(t)
	fillQuota(t, addr)
	alone, both := dial(t, addr), dial(t, addr)
	alone.Run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<x@elsewhere.example>
		S: 250
		C: RCPT TO:<full@example.test>
		S: 250
	`)
	both.Run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<x@elsewhere.example>
		S: 250
		C: RCPT TO:<full@example.test>
		S: 250
		C: RCPT TO:<roomy@example.test>
		S: 250
	`)
	fillQuota(t, addr) // the second and last message full@ may have
	alone.Run(`
		C: DATA
		S: 354
		C: Subject: late
		C:
		C: hello
		C: .
		S: 552 5.2.2
	`)
	both.Run(`
		C: DATA
		S: 354
		C: Subject: late
		C:
		C: hello
		C: .
		S: 452 4.2.2
	`)
	if f, r := usage(t, st, full), usage(t, st, roomy); f != 2 || r != 0 {
		t.Errorf("messages: full %d, roomy %d; want 2 and 0", f, r)
	}
}
