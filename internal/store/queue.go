package store

import (
	"context"
	"io"
	"time"
)

// The outbound queue: messages for recipients at other domains, waiting for delivery.
//
// An entry is one message (its own body blob, as it goes out: DKIM-signed, without the
// Return-Path a final delivery adds) with the envelope of the transaction that brought it
// (MAIL FROM with RET and ENVID, RFC 3461) and one row per recipient still to deliver
// (NOTIFY, ORCPT, attempts, next attempt, last error). A recipient row exists exactly as
// long as its fate is open: Record removes it once it was delivered or bounced, and an
// entry without recipients is removed with its body in the same commit.
//
// Claiming is a lease: Claim moves the chosen recipients' lease past an instant in the
// future; Due never returns a leased recipient, and Record ends the lease. A process that
// dies during an attempt leaves its leases behind; they run out (or ReleaseLeases ends them
// at the start of the only process using the store), and the recipients are tried again.
// An attempt that had delivered before the crash is then sent twice: a duplicate, never a
// loss (RFC 5321 §6.1).

// Outbound is a message for remote recipients, committed with a Delivery (Delivery.Outbound)
// so that local and remote recipients of one message are one transaction.
type Outbound struct {
	MailFrom string // reverse-path, "" for the null sender (a bounce)
	Ret      string // RFC 3461 §4.3 RET: "FULL", "HDRS" or ""
	EnvID    string // RFC 3461 §4.4 ENVID, decoded; "" if none
	// EightBit and UTF8Headers are what the transport needs (BODY=8BITMIME, SMTPUTF8),
	// found once at submission.
	EightBit, UTF8Headers bool
	Recipients            []OutboundRecipient
	Body                  io.Reader // the message as it goes out; read exactly once
	Size                  int64
	// NextAttempt is when the first attempt is due; zero: at once.
	NextAttempt time.Time
}

// OutboundRecipient is one remote recipient with its RFC 3461 parameters.
type OutboundRecipient struct {
	Address string // as it goes out in RCPT TO
	Domain  string // the destination: lower-case, the part after the @
	Notify  string // "" (not given), "NEVER", or a comma list of SUCCESS, FAILURE, DELAY
	// ORcpt is the original recipient (decoded) and ORcptType its type, "" when absent.
	ORcpt, ORcptType string
}

// QueueEntry is a queued message as the queue and the CLI see it.
type QueueEntry struct {
	ID                    int64
	MailFrom, Ret, EnvID  string
	EightBit, UTF8Headers bool
	BlobID                int64
	Size                  int64
	Created               time.Time
	Held                  bool // no attempts until released
	Recipients            []QueueRecipient
}

// QueueRecipient is a recipient whose fate is still open.
type QueueRecipient struct {
	ID int64
	OutboundRecipient
	Attempts    int       // attempts made so far
	NextAttempt time.Time // when the next one is due
	LeaseUntil  time.Time // claimed by an attempt until then; zero when not claimed
	LastError   string    // the reply of the last failed attempt, "" before any
	// Warned: a delay DSN went out already (one per recipient).
	Warned bool
	// Bounce: an operator asked to give up (petrel queue bounce); the next claim fails it.
	Bounce bool
}

// QueueGroup names the recipients of one entry at one destination domain: the unit of an
// attempt.
type QueueGroup struct {
	EntryID int64
	Domain  string
	Due     time.Time // the earliest next attempt among them
}

// QueueUpdate is what an attempt decided about one recipient.
type QueueUpdate struct {
	RecipientID int64
	// Done removes the recipient: delivered, or bounced (its DSN already committed).
	Done bool
	// Otherwise the recipient waits: attempts counts one more, and these are kept.
	NextAttempt time.Time
	LastError   string
	Warned      bool
}

// Queue is the durable outbound queue (see the comment above). Entries are named by ID; a
// missing one is ErrNotFound.
type Queue interface {
	// Due lists up to limit groups with a recipient due at now (next attempt reached, not
	// leased, entry not held), earliest first; domain "" means any domain.
	Due(ctx context.Context, now time.Time, domain string, limit int) ([]QueueGroup, error)
	// NextDue is the earliest next attempt of any recipient that is not held (leased
	// ones count at their lease's end); zero when the queue is empty.
	NextDue(ctx context.Context) (time.Time, error)
	// Claim leases the due recipients of group g until the given time and returns the entry
	// with just them; none left (another claim was first) is ErrNotFound.
	Claim(ctx context.Context, g QueueGroup, now, until time.Time) (QueueEntry, error)
	// Record applies the outcome of an attempt to recipients of one entry and ends their
	// leases; an entry left without recipients is removed with its body.
	Record(ctx context.Context, entryID int64, updates []QueueUpdate) error
	// ReleaseLeases ends every lease: only for the start of the single process that runs
	// the queue on this store (a crash left its leases behind).
	ReleaseLeases(ctx context.Context) error

	// Entries lists the queue (every entry with its recipients), oldest first.
	Entries(ctx context.Context) ([]QueueEntry, error)
	Entry(ctx context.Context, id int64) (QueueEntry, error)
	// Retry makes the recipients of an entry (id 0: of every entry) due now.
	Retry(ctx context.Context, id int64, now time.Time) error
	// Hold stops (true) or resumes (false) attempts for an entry.
	Hold(ctx context.Context, id int64, held bool) error
	// Delete removes an entry without any notice to its sender.
	Delete(ctx context.Context, id int64) error
	// Bounce marks every recipient of an entry for bouncing and makes them due now: the
	// running queue fails them with a DSN at its next look.
	Bounce(ctx context.Context, id int64, now time.Time) error

	// Enqueue commits a message for remote recipients alone (a DSN to a remote sender);
	// it returns the new entry's ID.
	Enqueue(ctx context.Context, o *Outbound) (int64, error)

	// MTASTSPolicy returns a cached MTA-STS policy (opaque bytes of the outbound code), or
	// ErrNotFound; SetMTASTSPolicy stores one. Kept in the store so that a restart keeps
	// the policies (RFC 8461 §5.1: a cached policy defeats a stripped TXT record).
	MTASTSPolicy(ctx context.Context, domain string) ([]byte, error)
	SetMTASTSPolicy(ctx context.Context, domain string, policy []byte) error
}
