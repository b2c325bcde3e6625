package queue

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/deliver"
	"petrel/internal/mailtest"
	"petrel/internal/outbound/mx"
	"petrel/internal/outbound/smtpclient"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// TestBadDNS: with the real router and a DNS server that misbehaves, every recipient ends as
// a retry with the reason (timeout, SERVFAIL, garbage, a CNAME loop) or a bounce (null MX,
// no such domain), and no attempt hangs.
func TestBadDNS(t *testing.T) {
	dns := mailtest.StartDNS(t, mailtest.Zone{
		MX:    map[string][]mailtest.MX{"null.test": {{Pref: 0, Host: "."}}},
		CNAME: map[string]string{"loop1.test": "loop2.test", "loop2.test": "loop1.test"},
		Fail: map[string]mailtest.Failure{"timeout.test": mailtest.Timeout, "servfail.test": mailtest.ServFail,
			"garbage.test": mailtest.Garbage},
	})
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	st.AddDomain(ctx, "example.org")
	alice, err := st.AddAccount(ctx, "alice@example.org", store.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dl := deliver.New(st, log)
	res := &mx.DNSResolver{Servers: []string{dns.Addr}, Timeout: 200 * time.Millisecond}
	client := smtpclient.New(smtpclient.Config{Hostname: "petrel.example.org", Router: &mx.Router{Resolver: res}, Port: 25})
	q := New(Config{Hostname: "petrel.example.org", AttemptTimeout: 10 * time.Second, Schedule: Schedule{First: time.Hour}}, st, client, dl, log)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); q.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	domains := []string{"timeout.test", "servfail.test", "garbage.test", "loop1.test", "null.test", "nxdomain.test"}
	ids := map[string]int64{}
	for _, d := range domains {
		body := "Subject: to " + d + "\r\n\r\nx\r\n"
		id, err := st.Enqueue(ctx, &store.Outbound{MailFrom: "alice@example.org", Body: strings.NewReader(body), Size: int64(len(body)),
			Recipients: []store.OutboundRecipient{{Address: "x@" + d, Domain: d}}})
		if err != nil {
			t.Fatal(err)
		}
		ids[d] = id
	}
	q.Kick()
	// Temporary: waiting with a reason. Permanent: gone, with a DSN.
	deadline := time.Now().Add(60 * time.Second)
	for _, d := range []string{"timeout.test", "servfail.test", "garbage.test", "loop1.test"} {
		for {
			e, err := st.Entry(ctx, ids[d])
			if err == nil && e.Recipients[0].Attempts == 1 {
				if r := e.Recipients[0].LastError; !strings.HasPrefix(r, "4") {
					t.Errorf("%s: last error %q, want a 4xx", d, r)
				} else {
					t.Logf("%s: %s", d, r)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no attempt recorded: %+v %v", d, e, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, d := range []string{"null.test", "nxdomain.test"} {
		for {
			if _, err := st.Entry(ctx, ids[d]); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still queued", d)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	box, _ := st.Mailbox(ctx, alice.ID, store.Inbox)
	var ms []store.Message
	for time.Now().Before(deadline) {
		if ms, _ = st.Messages(ctx, box.ID, store.Filter{}); len(ms) == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(ms) != 2 {
		t.Fatalf("%d DSNs for the two permanent failures", len(ms))
	}
}
