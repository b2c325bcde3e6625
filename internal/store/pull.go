package store

import (
	"context"
	"slices"
	"time"
)

// Pull sources: outside POP3 or IMAP mailboxes the server polls and delivers into an account
// (issue 16; internal/pull). Each source has its own state: the unique-ids (POP3 UIDL, IMAP
// UIDVALIDITY/UID) of the messages already delivered, and when it is next due.
//
// This is an interface of its own rather than part of Store, so that a backend can be written
// against Store first; the app finds it by a type assertion. A backend that implements it also
// honours Delivery.Pulled: the unique-id is recorded in the commit of the delivery, and a
// unique-id recorded before fails the delivery with ErrExists (nothing is delivered). So a
// message is delivered at most once per source, whatever crashes or how many nodes poll.

// PullSource is one outside mailbox of an account.
type PullSource struct {
	ID        int64
	AccountID int64
	Protocol  string // "pop3" or "imap"
	Addr      string // host:port
	TLS       string // "tls" (implicit), "starttls" or "plain"
	CAFile    string // PEM CA certificates to trust instead of the system's; "" for the system's
	User      string
	// Secret is the sealed password (internal/pull seals and opens it); the store never sees
	// the password itself.
	Secret []byte
	Keep   bool          // leave messages on the server; else delete them once delivered
	Every  time.Duration // the polling interval
	Folder string        // IMAP: the folder to pull; "" is INBOX
	// The schedule and the outcome of the last poll.
	NextPoll  time.Time
	LastPoll  time.Time // zero: never polled
	LastError string    // "" after a successful poll
	Failures  int       // polls failed in a row
	// Notice is the last event worth an operator's eye that was not a failure (an IMAP
	// folder's UIDVALIDITY changing), with its time; "" when there was none.
	Notice string
	// Lease is the claim of the node polling the source now (ClaimPull), zero when none does;
	// FinishPull must present it.
	Lease time.Time
}

// PullOutcome is what a poll reports to FinishPull.
type PullOutcome struct {
	Polled    time.Time
	NextPoll  time.Time
	LastError string
	Failures  int
	// Notice, when set, replaces the source's Notice; "" keeps it.
	Notice string
}

// PulledMessage names a message of a source in a Delivery (Delivery.Pulled).
type PulledMessage struct {
	SourceID int64
	UID      string
	// Fingerprint identifies the message by its content (internal/pull: a digest of its
	// header block), recorded with the unique-id so that a message whose unique-id changed
	// (an IMAP UIDVALIDITY change) can be recognized; "" when not known.
	Fingerprint string
}

// Pulls keeps pull sources and their state. A missing account or source is ErrNotFound.
type Pulls interface {
	// AddPullSource stores a new source (its ID is ignored), due at once, and returns its ID.
	AddPullSource(ctx context.Context, src PullSource) (int64, error)
	// PullSources lists an account's sources by ID.
	PullSources(ctx context.Context, accountID int64) ([]PullSource, error)
	// RemovePullSource removes a source of the account with its state.
	RemovePullSource(ctx context.Context, accountID, id int64) error
	// PullNow makes a source of the account due at once.
	PullNow(ctx context.Context, accountID, id int64) error

	// ClaimPull leases one source that is due at now and not leased (or whose lease ran
	// out) until now+lease, and returns it with its Lease set. Two callers, on one node or
	// several, never get the same source while its lease runs. None due is ErrNotFound.
	ClaimPull(ctx context.Context, now time.Time, lease time.Duration) (PullSource, error)
	// FinishPull records the outcome of the poll of src and ends its lease; a lease that is
	// no longer src's (it ran out and another took the source, or the source was removed)
	// is ErrNotFound, and nothing is changed.
	FinishPull(ctx context.Context, src PullSource, o PullOutcome) error
	// ReleasePullLeases ends every lease: only for the start of the one process that polls
	// the store (the embedded store's data directory lock), whose leases a crash left.
	ReleasePullLeases(ctx context.Context) error

	// PulledUIDs returns the unique-ids recorded for a source, with when each was recorded.
	PulledUIDs(ctx context.Context, sourceID int64) (map[string]time.Time, error)
	// MarkPulled records unique-ids (those recorded already keep their time).
	MarkPulled(ctx context.Context, sourceID int64, uids []string, now time.Time) error
	// ForgetPulled removes unique-ids (messages that left the outside mailbox), so that
	// the state does not grow forever.
	ForgetPulled(ctx context.Context, sourceID int64, uids []string) error
}

// PullState is the rest of a pull source's life, beside Pulls: editing a source without
// losing what it pulled, and the fingerprints that recognize a pulled message whose
// unique-id changed. A backend with Pulls implements it too; FinishPull writes
// PullOutcome.Notice, and a delivery records Delivery.Pulled.Fingerprint.
type PullState interface {
	// EditPullSource changes the source src.ID of src.AccountID to src's Addr, TLS, CAFile,
	// User, Secret, Keep, Every and Folder, and makes it due at once. Its protocol, its
	// recorded unique-ids and its failure count stay. Not the account's is ErrNotFound.
	EditPullSource(ctx context.Context, src PullSource) error
	// PulledFingerprints returns the fingerprint recorded with each unique-id of a source
	// ("" for one recorded without).
	PulledFingerprints(ctx context.Context, sourceID int64) (map[string]string, error)
	// MarkPulledWith records pulled messages with their fingerprints (a unique-id recorded
	// already keeps its time and gains a fingerprint it lacked).
	MarkPulledWith(ctx context.Context, msgs []PulledMessage, now time.Time) error
	// RekeyPulled renames the recorded unique-id from of a source to to, keeping its time
	// and fingerprint, in one commit: ErrNotFound when from is not recorded (another poller
	// took it), ErrExists when to is.
	RekeyPulled(ctx context.Context, sourceID int64, from, to string) error
	// RetirePulled marks every recorded unique-id of a source as from an earlier listing
	// (prefixed with RetiredPrefix), so that none is taken for a message present now while
	// their fingerprints still recognize messages pulled before (a changed IMAP folder).
	RetirePulled(ctx context.Context, sourceID int64) error
}

// RetiredPrefix starts a unique-id that RetirePulled retired. No IMAP "UIDVALIDITY/UID"
// key starts with it (a POP3 UIDL could, but only IMAP sources are retired).
const RetiredPrefix = "~"

// PullColumns are the columns of a pull source in both backends' pull_sources table, in the
// order ScanPullSource reads them.
const PullColumns = `id, account_id, protocol, addr, tls, ca_file, username, secret, keep, every, folder,
	next_poll, last_poll, last_error, failures, lease_until, notice`

// ScanPullSource reads a row of PullColumns (times in unix nanoseconds, 0 for none) with scan.
func ScanPullSource(scan func(dest ...any) error) (PullSource, error) {
	var p PullSource
	var every, next, last, lease int64
	err := scan(&p.ID, &p.AccountID, &p.Protocol, &p.Addr, &p.TLS, &p.CAFile, &p.User, &p.Secret, &p.Keep,
		&every, &p.Folder, &next, &last, &p.LastError, &p.Failures, &lease, &p.Notice)
	p.Every, p.NextPoll = time.Duration(every), time.Unix(0, next)
	if last != 0 {
		p.LastPoll = time.Unix(0, last)
	}
	if lease != 0 {
		p.Lease = time.Unix(0, lease)
	}
	return p, err
}

// PulledCopies finds the account's own copies of pulled messages, for what a pull record
// does not hold: a record made before fingerprints were kept has none, and the server that
// named it may since have renamed its messages (an IMAP UIDVALIDITY change, POP3 UIDLs that
// changed), so the fingerprint can only come from the copy the delivery stored. A delivery
// records its unique-id with the delivery's time (Delivery.ReceivedAt), which is also the
// internal date of every message it stored, and a message keeps its internal date when it
// is moved or copied (RFC 9051 §2.3.3): that time links a record to its copies. A backend
// with PullState implements it too.
type PulledCopies interface {
	// PulledBlobs returns, for each of uids recorded for the source, the blobs of the
	// messages of the source's account, in any mailbox, whose internal date is the time of
	// that record. A unique-id not recorded, or whose copies are all gone (expunged, or a
	// Sieve discard), is absent; so is everything for a missing source.
	PulledBlobs(ctx context.Context, sourceID int64, uids []string) (map[string][]int64, error)
}

// Rows is a backend's query result (database/sql's, or the PostgreSQL backend's wrapper).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// QueryPulledBlobs is PulledCopies.PulledBlobs over a backend's read query (SQL with ?
// placeholders), the same in both backends. It reads the records' times, then the account's
// messages stored between the first and the last of them once: a join on the time would
// make SQLite scan the account's messages once per record.
func QueryPulledBlobs[R Rows](ctx context.Context, query func(context.Context, string, ...any) (R, error), sourceID int64, uids []string) (map[string][]int64, error) {
	want := make(map[string]bool, len(uids))
	for _, u := range uids {
		want[u] = true
	}
	byTime := map[int64][]string{}
	var lo, hi int64
	err := scanRows(ctx, query, `SELECT uid, seen FROM pull_seen WHERE source_id = ?`, []any{sourceID}, func(r R) error {
		var uid string
		var seen int64
		if err := r.Scan(&uid, &seen); err != nil || !want[uid] {
			return err
		}
		if len(byTime) == 0 || seen < lo {
			lo = seen
		}
		if len(byTime) == 0 || seen > hi {
			hi = seen
		}
		byTime[seen] = append(byTime[seen], uid)
		return nil
	})
	out := map[string][]int64{}
	if err != nil || len(byTime) == 0 {
		return out, err
	}
	err = scanRows(ctx, query, `SELECT m.internal_date, m.blob_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
		WHERE b.account_id = (SELECT account_id FROM pull_sources WHERE id = ?) AND m.internal_date BETWEEN ? AND ?
		ORDER BY m.id`, []any{sourceID, lo, hi}, func(r R) error {
		var at, blob int64
		if err := r.Scan(&at, &blob); err != nil {
			return err
		}
		for _, uid := range byTime[at] {
			if !slices.Contains(out[uid], blob) {
				out[uid] = append(out[uid], blob)
			}
		}
		return nil
	})
	return out, err
}

// scanRows runs q and calls f on each row.
func scanRows[R Rows](ctx context.Context, query func(context.Context, string, ...any) (R, error), q string, args []any, f func(R) error) error {
	rows, err := query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}
