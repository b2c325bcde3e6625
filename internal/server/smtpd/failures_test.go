package smtpd

// What the client sees when our side fails: the store, or a panic in a session.

import (
	"errors"
	"strings"
	"testing"

	"petrel/internal/mail/deliver"
)

func TestStoreFailure(t *testing.T) {
	fd := newFakeDeliverer()
	fd.fail = errors.New("disk full")
	ts := startServer(t, Config{}, fd)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: HELO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		C: x
		C: .
		S: 451 4.3.0
	`)
	if !strings.Contains(ts.logs.String(), "result=failed") {
		t.Errorf("log:\n%s", ts.logs)
	}
}

func TestPanicRecovered(t *testing.T) {
	fd := newFakeDeliverer()
	fd.panicOn = "boom@example.test"
	ts := startServer(t, Config{}, fd)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<boom@example.test>
		S: 421
		CLOSED
	`)
	// The server still works.
	c = dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO client
		S: 250
		C: QUIT
		S: 221
	`)
	if !strings.Contains(ts.logs.String(), "resolve exploded") {
		t.Errorf("panic not logged:\n%s", ts.logs)
	}
}

// TestSieveReject: a recipient's Sieve script refused the message (deliver.RejectError):
// the client gets 550 5.7.1 with the script's reason, nothing was delivered.
func TestSieveReject(t *testing.T) {
	fd := newFakeDeliverer()
	fd.fail = &deliver.RejectError{Reason: "not interested"}
	ts := startServer(t, Config{}, fd)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: HELO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		C: x
		C: .
		S: 550 5.7.1 not interested
	`)
	if !strings.Contains(ts.logs.String(), "sieve: not interested") {
		t.Errorf("log:\n%s", ts.logs)
	}
}
