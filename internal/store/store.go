// Package store defines what Petrel keeps: domains, accounts, aliases, mailboxes and messages.
//
// The store speaks mail, not SQL. Implementations live in sub-packages (sqlite is the embedded
// default) and every one of them must pass the conformance suite in storetest.
//
// Invariants every implementation keeps:
//   - Deliver commits a message for all of its recipients in one transaction, durably (fsync)
//     before it returns nil. On error nothing of the delivery is visible.
//   - A message body (blob) is written once, never modified, and shared by every mailbox that
//     received it. It is stored exactly as served: CRLF line endings, trace headers included.
//   - Every mailbox has a UIDVALIDITY fixed at creation and a UIDNEXT that only grows; every
//     change to a message or mailbox raises the account's MODSEQ, and the new value is stored
//     on what changed.
//   - After every commit the store itself publishes typed change events to subscribers, so no
//     caller has to remember to.
//   - Schema migrations are versioned and run at Open; a schema newer than the binary is an error.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors shared by all implementations; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	// ErrLocked is returned when a POP3 maildrop is already locked by another session.
	ErrLocked = errors.New("store: maildrop locked")
	// ErrSchemaTooNew means the database was written by a newer Petrel.
	ErrSchemaTooNew = errors.New("store: schema is newer than this binary")
)

// Standard mailboxes created for every new account (RFC 6154 special-use names).
const (
	Inbox   = "INBOX"
	Sent    = "Sent"
	Drafts  = "Drafts"
	Trash   = "Trash"
	Junk    = "Junk"
	Archive = "Archive"
)

// DefaultMailboxes lists the mailboxes every account gets at creation, in display order.
var DefaultMailboxes = []string{Inbox, Sent, Drafts, Trash, Junk, Archive}

// System flags (RFC 9051 §2.3.2). Keywords are any other atom.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

// POP3DeletePolicy says what a POP3 DELE does when the session commits at QUIT.
type POP3DeletePolicy string

const (
	POP3Delete  POP3DeletePolicy = "delete"  // expunge the message (RFC 1939 default)
	POP3Keep    POP3DeletePolicy = "keep"    // leave it in INBOX, flagged \Seen
	POP3Archive POP3DeletePolicy = "archive" // move it to Archive
)

// Valid reports whether p is one of the known policies.
func (p POP3DeletePolicy) Valid() bool {
	return p == POP3Delete || p == POP3Keep || p == POP3Archive
}

// Domain is a domain Petrel accepts mail for.
type Domain struct {
	Name string // lower-case, IDNA A-label form
	// CatchAll is the address of the account that receives mail for unknown local parts of
	// this domain; empty means unknown local parts are refused.
	CatchAll string
}

// Credentials are opaque strings produced and checked by the auth package; the store only
// keeps them.
type Credentials struct {
	PasswordHash string // PHC-format hash of the password (argon2id)
	SCRAMSHA256  string // SCRAM-SHA-256 salt, iterations, StoredKey and ServerKey, encoded
}

// Account is a user that can log in and owns mailboxes.
type Account struct {
	ID          int64
	Address     string // canonical login and primary address, lower-case local@domain
	Credentials Credentials
	POP3Delete  POP3DeletePolicy
	Created     time.Time
}

// Alias maps an address of a hosted domain to one or more target addresses (local accounts
// now; remote addresses once outbound delivery exists).
type Alias struct {
	Address string
	Targets []string
}

// Mailbox is a folder of an account.
type Mailbox struct {
	ID            int64
	AccountID     int64
	Name          string // "INBOX" or a hierarchy name using "/" as separator
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	Messages      int // number of messages
}

// Message is one message in one mailbox. Bodies are shared: BlobID names the stored bytes.
type Message struct {
	ID           int64 // row id of this mailbox entry; unique across the store
	MailboxID    int64
	UID          uint32
	BlobID       int64
	Size         int64 // bytes of the stored body, CRLF line endings
	InternalDate time.Time
	Flags        []string // system flags and keywords, sorted
	ModSeq       uint64
}

// ParsedMessage is the cached parse of a body, computed once at delivery so that IMAP FETCH
// never re-parses. Envelope and Structure are JSON documents owned by the message package.
type ParsedMessage struct {
	MessageID string // Message-ID header without angle brackets
	Subject   string
	From      string
	Date      time.Time // Date header; zero if absent or unparseable
	Envelope  []byte    // JSON
	Structure []byte    // JSON
}

// Delivery is one accepted message with all its local recipients. It is committed in one
// transaction: either every target mailbox gets the message or none does.
type Delivery struct {
	MailFrom   string // envelope sender, "" for the null sender
	Targets    []Target
	Body       io.Reader // the full message as stored; read exactly once during Deliver
	Size       int64     // len of Body in bytes
	Parsed     ParsedMessage
	ReceivedAt time.Time
	Flags      []string // initial flags, e.g. \Seen for a copy into Sent
}

// Target is one mailbox a delivery goes to.
type Target struct {
	AccountID int64
	Mailbox   string // mailbox name; a missing mailbox falls back to INBOX
}

// Delivered reports where a delivery went, in Targets order.
type Delivered struct {
	BlobID   int64
	Messages []Message
}

// Directory holds domains, accounts and aliases. The CLI and the servers change it while
// the other runs; every read goes to the store, so changes show at once.
type Directory interface {
	AddDomain(ctx context.Context, name string) error
	DeleteDomain(ctx context.Context, name string) error // refuses (ErrExists) while accounts remain
	Domains(ctx context.Context) ([]Domain, error)
	Domain(ctx context.Context, name string) (Domain, error)
	SetCatchAll(ctx context.Context, domain, target string) error // target "" clears it

	// AddAccount creates the account and its DefaultMailboxes in one transaction.
	AddAccount(ctx context.Context, address string, cred Credentials) (Account, error)
	DeleteAccount(ctx context.Context, address string) error        // removes its mailboxes too
	Accounts(ctx context.Context, domain string) ([]Account, error) // domain "" lists all
	AccountByAddress(ctx context.Context, address string) (Account, error)
	AccountByID(ctx context.Context, id int64) (Account, error)
	SetCredentials(ctx context.Context, accountID int64, cred Credentials) error
	SetPOP3Delete(ctx context.Context, accountID int64, p POP3DeletePolicy) error

	AddAlias(ctx context.Context, address string, targets []string) error
	DeleteAlias(ctx context.Context, address string) error
	Aliases(ctx context.Context, domain string) ([]Alias, error) // domain "" lists all
	Alias(ctx context.Context, address string) (Alias, error)
}

// Mail holds mailboxes and messages.
type Mail interface {
	// Deliver commits d durably for all targets (see package invariants).
	Deliver(ctx context.Context, d *Delivery) (Delivered, error)

	Mailboxes(ctx context.Context, accountID int64) ([]Mailbox, error)
	Mailbox(ctx context.Context, accountID int64, name string) (Mailbox, error)
	CreateMailbox(ctx context.Context, accountID int64, name string) (Mailbox, error)

	// Messages lists a mailbox in UID order.
	Messages(ctx context.Context, mailboxID int64) ([]Message, error)
	// OpenBlob returns the stored bytes of a body. The caller closes it.
	OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error)
	// Parsed returns the cached parse stored with a body at delivery, so that IMAP FETCH of
	// an envelope or structure never re-parses the message.
	Parsed(ctx context.Context, blobID int64) (ParsedMessage, error)

	// SetFlags adds (add=true) or removes flags on the given messages of one mailbox.
	SetFlags(ctx context.Context, mailboxID int64, uids []uint32, flags []string, add bool) error
	// Expunge removes the given messages from one mailbox; blobs no mailbox refers to are freed.
	Expunge(ctx context.Context, mailboxID int64, uids []uint32) error
	// Move moves messages to another mailbox of the same account, giving them new UIDs there.
	Move(ctx context.Context, from int64, uids []uint32, to int64) error

	// LockMaildrop takes the exclusive POP3 lock of an account (RFC 1939 §8), or returns
	// ErrLocked. The returned func releases it.
	LockMaildrop(ctx context.Context, accountID int64) (unlock func(), err error)
}

// Change is a typed event the store publishes after a commit.
type Change struct {
	Kind      ChangeKind
	AccountID int64
	MailboxID int64
	UIDs      []uint32
	ModSeq    uint64 // account MODSEQ after the commit
}

// ChangeKind names what a Change is about.
type ChangeKind int

const (
	ChangeAdd     ChangeKind = iota + 1 // messages appeared in a mailbox
	ChangeFlags                         // flags of messages changed
	ChangeExpunge                       // messages left a mailbox
	ChangeMailbox                       // a mailbox was created, renamed or deleted
)

// Changes lets sessions follow commits.
type Changes interface {
	// Subscribe returns a channel of changes for one account. The channel is closed if the
	// subscriber falls behind; it must then resync from the store by MODSEQ. cancel stops it.
	Subscribe(accountID int64) (changes <-chan Change, cancel func())
}

// Store is everything Petrel keeps.
type Store interface {
	Directory
	Mail
	Changes
	Close() error
}
