// Package store defines what Petrel keeps: domains, accounts, aliases, mailboxes and messages.
//
// The store speaks mail, not SQL: accounts, mailboxes with UIDVALIDITY and UIDNEXT, messages
// with UIDs, flags and MODSEQ, immutable shared bodies. Implementations live in sub-packages
// (sqlite is the embedded default; a PostgreSQL backend for several nodes is planned) and
// every one of them must pass the conformance suite in storetest. Nothing here names a
// database or a protocol library type; the methods are shaped for IMAP (RFC 9051 with
// CONDSTORE/QRESYNC, UIDPLUS, MOVE, SPECIAL-USE, LIST-EXTENDED, STATUS=SIZE, QUOTA), POP3
// and SMTP delivery.
//
// Invariants every implementation keeps:
//   - A write returns nil only once it is committed durably (fsync or the database's
//     equivalent); on error nothing of it is visible. Deliver commits a message for all of
//     its recipients in one transaction.
//   - A message body (blob) is written once, never modified, and shared by every mailbox that
//     received or copied it. It is stored exactly as served: CRLF line endings, trace headers
//     included.
//   - Every mailbox has a UIDVALIDITY fixed at creation and never used by another mailbox
//     (RFC 9051 §2.3.1.1), and a UIDNEXT that only grows: UIDs are never reused. The one
//     exception is AdoptUIDs: mail moved from another server keeps that server's
//     UIDVALIDITY, which a mailbox of another account may have too (they are unique per
//     account, which is all IMAP and POP3 need).
//   - Every write to mailboxes or messages raises its account's MODSEQ once (RFC 7162
//     §3.1.1: one operation may give several changes the same mod-sequence); what changed
//     stores the new value: the message (flags, arrival), the tombstone of an expunged
//     message, and the mailbox, whose HighestModSeq is therefore at least the MODSEQ of
//     everything in it and never zero. A write that changes nothing raises nothing.
//   - An expunged message leaves a tombstone (its UID and the MODSEQ of the expunge) for as
//     long as its mailbox exists, so that a client that was away can ask what vanished since
//     the MODSEQ it knew (QRESYNC, RFC 7162 §3.2.5). A message moved away leaves one too.
//   - A mailbox's counts (messages, unseen, \Deleted, total size) and an account's usage
//     (messages, size) are kept up to date in the commit that changes them, so STATUS, LIST
//     and a quota check never list messages. \Recent is not kept: IMAP4rev2 removed it
//     (RFC 9051 Appendix E) and an IMAP4rev1 session derives it from its own view if at all.
//   - Mailbox names are scoped to their account and never interpreted as paths: "/" is the
//     hierarchy separator, INBOX (any case, also as the first level) is spelled "INBOX", and a
//     name with an empty, "." or ".." level, a control character or a LIST wildcard is
//     refused (ErrInvalid). Operations that take two mailboxes refuse mailboxes of two
//     accounts.
//   - After every commit the store publishes typed change events to subscribers (Changes),
//     so no caller has to remember to.
//   - Schema migrations are versioned and run at Open; a schema newer than the binary is an
//     error.
package store

import (
	"context"
	"errors"
	"fmt"
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
	// ErrInvalid means an argument the store cannot take: a bad mailbox name, flag or
	// special-use attribute, deleting INBOX, renaming a mailbox into itself. IMAP answers
	// NO [CANNOT] (RFC 5530).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrHasChildren means a mailbox cannot be deleted while it has inferior mailboxes (RFC
	// 9051 §6.3.5 lets a server refuse; IMAP answers NO [HASCHILDREN], RFC 5530).
	ErrHasChildren = errors.New("store: mailbox has inferior mailboxes")
	// ErrOverQuota means a write would take an account beyond its quota (RFC 9208 §4.3:
	// IMAP answers NO [OVERQUOTA], SMTP 552 4.2.2). Nothing of the write was committed. A
	// delivery's error is a *QuotaError that names the accounts.
	ErrOverQuota = errors.New("store: over quota")
)

// QuotaError is the error of a delivery refused because some of its targets' accounts are
// over quota; errors.Is(err, ErrOverQuota) holds. The delivery committed nothing, not even
// for the other targets: the caller decides (SMTP refuses those recipients at RCPT next
// time and asks the client to retry the others).
type QuotaError struct {
	Accounts []int64 // the accounts over quota, ascending
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("store: over quota: accounts %v", e.Accounts)
}

func (e *QuotaError) Is(target error) bool { return target == ErrOverQuota }

// Standard mailboxes created for every new account, each but INBOX with its RFC 6154
// special-use attribute (DefaultSpecialUse).
const (
	Inbox   = "INBOX"
	Sent    = "Sent"
	Drafts  = "Drafts"
	Trash   = "Trash"
	Junk    = "Junk"
	Archive = "Archive"
)

// DefaultMailboxes lists the mailboxes every account gets at creation, in display order.
// They are created subscribed.
var DefaultMailboxes = []string{Inbox, Sent, Drafts, Trash, Junk, Archive}

// Separator is the hierarchy separator of mailbox names ("Projects/Petrel").
const Separator = "/"

// SpecialUse is a special-use attribute of a mailbox (RFC 6154 §2). Only the attributes of
// real mailboxes are kept; \All and \Flagged name virtual mailboxes Petrel does not have.
type SpecialUse string

const (
	UseArchive SpecialUse = `\Archive`
	UseDrafts  SpecialUse = `\Drafts`
	UseJunk    SpecialUse = `\Junk`
	UseSent    SpecialUse = `\Sent`
	UseTrash   SpecialUse = `\Trash`
)

// Valid reports whether u is "" (no attribute) or one of the attributes above.
func (u SpecialUse) Valid() bool {
	switch u {
	case "", UseArchive, UseDrafts, UseJunk, UseSent, UseTrash:
		return true
	}
	return false
}

// DefaultSpecialUse is the attribute a default mailbox gets at creation ("" for INBOX and
// any other name).
func DefaultSpecialUse(name string) SpecialUse {
	switch name {
	case Sent:
		return UseSent
	case Drafts:
		return UseDrafts
	case Trash:
		return UseTrash
	case Junk:
		return UseJunk
	case Archive:
		return UseArchive
	}
	return ""
}

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

// POP3UIDLFormat says how POP3 UIDL unique-ids of an account's messages are written (RFC 1939
// §7). Both are derived from UIDVALIDITY and UID, so they stay stable; the Dovecot format
// serves accounts moved from Dovecot with their UIDs (petrel import), whose POP3 clients
// remember Dovecot's unique-ids and would otherwise download everything again.
type POP3UIDLFormat string

const (
	UIDLPetrel  POP3UIDLFormat = ""        // "%x.%x" of UIDVALIDITY and UID
	UIDLDovecot POP3UIDLFormat = "dovecot" // Dovecot's default pop3_uidl_format %08Xu%08Xv
)

// Valid reports whether f is one of the known formats.
func (f POP3UIDLFormat) Valid() bool { return f == UIDLPetrel || f == UIDLDovecot }

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
	POP3UIDL    POP3UIDLFormat
	Created     time.Time
}

// Alias maps an address of a hosted domain to one or more target addresses (local accounts
// now; remote addresses once outbound delivery exists).
type Alias struct {
	Address string
	Targets []string
}

// Mailbox is a folder of an account, with the counts IMAP STATUS and LIST-STATUS report
// (RFC 9051 §6.3.11, RFC 8438 STATUS=SIZE), kept in step with its messages by every commit.
type Mailbox struct {
	ID            int64
	AccountID     int64
	Name          string // "INBOX" or a hierarchy name using Separator
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64     // MODSEQ of the last change to the mailbox or anything in it
	SpecialUse    SpecialUse // RFC 6154 attribute, "" for none
	// Keywords lists every keyword set on a message of the mailbox so far, sorted (the
	// IMAP FLAGS and PERMANENTFLAGS responses, RFC 9051 §7.3.5). It only grows.
	Keywords []string

	Messages int   // number of messages
	Unseen   int   // messages without \Seen
	Deleted  int   // messages with \Deleted
	Size     int64 // sum of the messages' sizes
}

// Usage is what an account stores, for quotas (RFC 9208): kept up to date in the commit,
// never summed on demand.
type Usage struct {
	Messages int64 // messages in all its mailboxes
	// Size sums the sizes of those messages; a body shared by two mailboxes counts twice,
	// as IMAP QUOTA's STORAGE resource counts it (RFC 9208 §5.1).
	Size      int64
	Mailboxes int
}

// QuotaDefault in a field of an account's QuotaLimits means "the store's default" (the
// configured one, sqlite.Options.DefaultQuota).
const QuotaDefault int64 = -1

// QuotaLimits are the limits on the two resources Petrel counts (RFC 9208 §5.1 STORAGE,
// §5.2 MESSAGE); 0 is no limit. Storage is in bytes (IMAP reports KiB, rounding up).
type QuotaLimits struct {
	Storage  int64
	Messages int64
}

// Quota is an account's quota: its own setting (fields may be QuotaDefault), the limits
// in force (the setting with the defaults filled in) and what it uses.
//
// The rule every write that adds messages keeps, atomically with its commit: it is refused
// when it would take the usage above a limit (usage + added > limit), so concurrent writes
// near the limit never pass it together, not even by one message. Writes that remove or
// keep the usage (expunge, move within the account, flag changes) are never refused, and
// an account already above a lowered limit can still delete.
type Quota struct {
	Setting QuotaLimits
	Limits  QuotaLimits
	Usage   Usage
}

// Over reports whether adding messages of size bytes in all would exceed q's limits.
func (q Quota) Over(messages, size int64) bool {
	return q.Limits.Storage > 0 && q.Usage.Size+size > q.Limits.Storage ||
		q.Limits.Messages > 0 && q.Usage.Messages+messages > q.Limits.Messages
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

// UIDRange is the UIDs from First to Last, both included. An IMAP "*" is math.MaxUint32.
type UIDRange struct{ First, Last uint32 }

// Filter selects messages of a mailbox (Messages) or tombstones (Vanished). The zero
// value selects everything.
type Filter struct {
	// UIDs keeps the UIDs in any of the ranges (which may overlap or come in any order);
	// empty keeps every UID.
	UIDs []UIDRange
	// ChangedSince keeps what changed after this MODSEQ (RFC 7162 §3.1.4 CHANGEDSINCE, and
	// the MODSEQ a QRESYNC client knew); 0 keeps everything.
	ChangedSince uint64
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
	// Text is what the full-text index keeps of the message. It is given at delivery and
	// append only (Parsed does not return it); nil indexes the Subject and From above alone.
	Text *SearchText
	// Sort are the keys of IMAP SORT and THREAD (store.Sorter). Like Text they are given at
	// delivery and append only; a store that keeps them stores nil as "not known yet".
	Sort *SortKeys
}

// SearchText is the decoded text of a message for the full-text index (IMAP SEARCH TEXT,
// BODY, SUBJECT, FROM, TO, CC, BCC): header values decoded from RFC 2047 and body parts
// from their transfer encoding and charset, all UTF-8. Raw base64 or quoted-printable is
// never indexed.
type SearchText struct {
	Subject, From, To, Cc, Bcc string
	Header                     string // every other header field, "Name: value" per line
	Body                       string // the text of the message's text parts
}

// SearchField names what a text search looks at (the IMAP search key of the same name).
type SearchField int

const (
	FieldText    SearchField = iota + 1 // TEXT: header and body
	FieldBody                           // BODY
	FieldSubject                        // SUBJECT
	FieldFrom                           // FROM
	FieldTo                             // TO
	FieldCc                             // CC
	FieldBcc                            // BCC
)

// Delivery is one accepted message with all its local recipients. It is committed in one
// transaction: either every target mailbox gets the message or none does.
type Delivery struct {
	MailFrom   string // envelope sender, "" for the null sender
	Targets    []Target
	Body       io.Reader // the full message as stored; read exactly once during Deliver
	Size       int64     // len of Body in bytes
	Parsed     ParsedMessage
	ReceivedAt time.Time // the INTERNALDATE of the messages; zero: now
	Flags      []string  // initial flags, e.g. \Seen for a copy into Sent
	// Outbound, when set, queues the message for remote recipients in the same
	// transaction (see Queue); Targets may then be empty.
	Outbound *Outbound
	// Charge, when set, is a sending-limit charge committed with the delivery (see
	// SendingCharge): a backend that stores the counters (Sending) must apply it in the
	// same transaction, and fail the delivery with the *LimitError it would exceed.
	Charge *SendingCharge
	// InboxFallback sends a target whose mailbox does not exist (renamed or deleted since the
	// rule naming it was written) to the account's INBOX: the rule for mail arriving over
	// SMTP, which must not bounce for a missing folder. Without it such a target fails the
	// delivery with ErrNotFound.
	InboxFallback bool
	// TargetFlags, when not nil, gives each target (same index) its own initial flags in
	// place of Flags (a Sieve script's imap4flags, RFC 5232); a nil entry means Flags.
	TargetFlags [][]string
	// More are further messages for remote recipients committed with this one: Sieve
	// redirects and vacation replies, each its own outbound entry.
	More []*Outbound
	// Pulled, when set, is the message of a pull source this delivery brings in: a backend
	// that implements Pulls records its unique-id in the same transaction, and fails the
	// delivery with ErrExists, delivering nothing, when it was recorded before.
	Pulled *PulledMessage
}

// Target is one mailbox a delivery goes to.
type Target struct {
	AccountID int64
	Mailbox   string // mailbox name; "" is INBOX
}

// Delivered reports where a delivery went, in Targets order.
type Delivered struct {
	BlobID   int64
	Messages []Message
}

// AppendMessage is one message its owner adds to a mailbox (IMAP APPEND, RFC 9051 §6.3.12).
type AppendMessage struct {
	Body         io.Reader // read exactly once during Append
	Size         int64     // len of Body in bytes
	Parsed       ParsedMessage
	Flags        []string
	InternalDate time.Time // zero: now
}

// Appended reports where Append put a message, for APPENDUID (RFC 4315 §3).
type Appended struct {
	UIDValidity uint32
	Message     Message
}

// MultiAppender adds several messages to one mailbox at once (IMAP MULTIAPPEND, RFC 3502).
// It is separate from Mail so that a backend can come without it.
type MultiAppender interface {
	// AppendMany appends msgs, in order, to an account's mailbox by name in one commit: all
	// of them or none (RFC 3502 §6.3.11 of RFC 9051's APPEND, made atomic). They get
	// consecutive UIDs. Errors are Append's; on any, nothing was added.
	AppendMany(ctx context.Context, accountID int64, mailbox string, msgs []*AppendMessage) (AppendedMany, error)
}

// AppendedMany reports where AppendMany put the messages, in their order (APPENDUID with a
// UID set, RFC 4315 §3).
type AppendedMany struct {
	UIDValidity uint32
	Messages    []Message
}

// FlagMode says how SetFlags combines its flags with a message's (IMAP STORE FLAGS, +FLAGS,
// -FLAGS).
type FlagMode int

const (
	FlagsAdd     FlagMode = iota + 1 // add the flags
	FlagsRemove                      // remove the flags
	FlagsReplace                     // the flags become exactly these
)

// FlagChange is one STORE.
type FlagChange struct {
	Mode  FlagMode
	Flags []string // system flags and keywords (\Recent is not a stored flag)
	// Conditional applies the change only to messages whose MODSEQ is at most
	// UnchangedSince (RFC 7162 §3.1.3); the others fail and are reported. UNCHANGEDSINCE 0
	// therefore fails every message.
	Conditional    bool
	UnchangedSince uint64
}

// FlagsUpdated reports what SetFlags did.
type FlagsUpdated struct {
	// ModSeq is the MODSEQ every changed message got; 0 when nothing changed.
	ModSeq uint64
	// Changed lists the messages whose flags changed, in UID order, with their new flags.
	// A message whose flags already were as asked is neither changed nor failed, and keeps
	// its MODSEQ.
	Changed []UIDFlags
	// Failed lists, in UID order, the messages the condition refused (the MODIFIED response
	// code of RFC 7162 §3.1.3).
	Failed []uint32
}

// UIDFlags is a message's flags after a change.
type UIDFlags struct {
	UID   uint32
	Flags []string
}

// Expunged reports what Expunge removed.
type Expunged struct {
	UIDs   []uint32 // in UID order; UIDs that were not in the mailbox are left out
	ModSeq uint64   // of the expunge and of its tombstones; 0 when nothing was removed
}

// Copied reports where Copy or Move put messages (COPYUID, RFC 4315 §3).
type Copied struct {
	UIDValidity uint32   // of the destination mailbox
	From        []uint32 // source UIDs that were copied, ascending; absent UIDs are left out
	To          []uint32 // the new UID of each, pair by pair, ascending
	ModSeq      uint64   // of the operation; 0 when nothing was copied
}

// Directory holds domains, accounts and aliases. The CLI and the servers change it while
// the other runs; every read goes to the store, so changes show at once.
type Directory interface {
	AddDomain(ctx context.Context, name string) error
	DeleteDomain(ctx context.Context, name string) error // refuses (ErrExists) while accounts remain
	Domains(ctx context.Context) ([]Domain, error)
	Domain(ctx context.Context, name string) (Domain, error)
	SetCatchAll(ctx context.Context, domain, target string) error // target "" clears it

	// AddAccount creates the account and its DefaultMailboxes (subscribed, with their
	// DefaultSpecialUse) in one transaction.
	AddAccount(ctx context.Context, address string, cred Credentials) (Account, error)
	DeleteAccount(ctx context.Context, address string) error        // removes its mailboxes too
	Accounts(ctx context.Context, domain string) ([]Account, error) // domain "" lists all
	AccountByAddress(ctx context.Context, address string) (Account, error)
	AccountByID(ctx context.Context, id int64) (Account, error)
	SetCredentials(ctx context.Context, accountID int64, cred Credentials) error
	SetPOP3Delete(ctx context.Context, accountID int64, p POP3DeletePolicy) error
	// SetPOP3UIDL sets how the account's POP3 unique-ids are written; an unknown format is
	// ErrInvalid.
	SetPOP3UIDL(ctx context.Context, accountID int64, f POP3UIDLFormat) error

	AddAlias(ctx context.Context, address string, targets []string) error
	DeleteAlias(ctx context.Context, address string) error
	Aliases(ctx context.Context, domain string) ([]Alias, error) // domain "" lists all
	Alias(ctx context.Context, address string) (Alias, error)
}

// Mailboxes holds an account's mailboxes, their attributes and its subscriptions. Names
// follow the rules of the package comment (CanonicalMailboxName); a missing account is
// ErrNotFound.
type Mailboxes interface {
	// Mailboxes lists an account's mailboxes in creation order (so DefaultMailboxes come
	// first, in their display order).
	Mailboxes(ctx context.Context, accountID int64) ([]Mailbox, error)
	Mailbox(ctx context.Context, accountID int64, name string) (Mailbox, error)
	// MailboxByID returns a mailbox whatever it is called now: a session that selected it
	// follows it through renames, and checks its HighestModSeq at each command (Changes).
	MailboxByID(ctx context.Context, mailboxID int64) (Mailbox, error)
	// CreateMailbox creates a mailbox and any missing superiors (RFC 9051 §6.3.4), each with
	// a fresh UIDVALIDITY, and returns the one named. An existing name is ErrExists.
	CreateMailbox(ctx context.Context, accountID int64, name string) (Mailbox, error)
	// RenameMailbox renames a mailbox and its inferiors ("a" to "b" takes "a/x" to "b/x"),
	// creating missing superiors of the new name (RFC 9051 §6.3.6). A renamed mailbox keeps
	// its UIDVALIDITY, messages and special use, and subscriptions follow the rename. If any
	// new name exists nothing changes (ErrExists); a mailbox cannot move into its own
	// hierarchy (ErrInvalid). Renaming INBOX moves its messages into a new mailbox of that
	// name (new UIDVALIDITY, UIDs from 1, tombstones left in INBOX) and leaves INBOX empty
	// and its inferiors where they are.
	RenameMailbox(ctx context.Context, accountID int64, from, to string) error
	// DeleteMailbox removes a mailbox with its messages and tombstones (RFC 9051 §6.3.5). It
	// refuses INBOX (ErrInvalid) and a mailbox with inferiors (ErrHasChildren). Its
	// UIDVALIDITY is never given again, so a mailbox created later with the same name is new
	// to clients. Subscriptions are left alone (RFC 9051 §6.3.9).
	DeleteMailbox(ctx context.Context, accountID int64, name string) error
	// SetSpecialUse sets or ("") clears a mailbox's special-use attribute (RFC 6154 §3,
	// CREATE-SPECIAL-USE); an attribute SpecialUse.Valid refuses is ErrInvalid.
	SetSpecialUse(ctx context.Context, accountID int64, name string, use SpecialUse) error
	// SetSubscribed adds a name to the account's subscriptions or removes it (RFC 9051
	// §6.3.9/§6.3.10). The name need not exist; both directions are idempotent.
	SetSubscribed(ctx context.Context, accountID int64, name string, subscribed bool) error
	// Subscriptions lists the subscribed names, sorted, whether or not they exist.
	Subscriptions(ctx context.Context, accountID int64) ([]string, error)
	// Usage reports what the account stores (quota preparation, RFC 9208) without summing.
	Usage(ctx context.Context, accountID int64) (Usage, error)
	// AdoptUIDs gives a mailbox the UIDVALIDITY and UIDNEXT another server had, so that
	// mail moved from it keeps its UIDs and clients in sync with the old server stay in
	// sync (petrel import): the next message added gets UID uidNext. UIDNEXT only grows
	// (a lower uidNext is ErrInvalid); UIDVALIDITY may change only while the mailbox has
	// never held a message (UIDNEXT 1), else it is ErrInvalid. A UIDVALIDITY that another
	// mailbox of the same account has is ErrExists, unless that mailbox too has never held
	// a message: it then gets a fresh UIDVALIDITY (no client can hold UIDs of it), as the
	// account's default mailboxes, created with the account, usually are. uidValidity 0
	// keeps the mailbox's own.
	AdoptUIDs(ctx context.Context, mailboxID int64, uidValidity, uidNext uint32) error
}

// Quotas holds the accounts' storage quotas (RFC 9208). The limits are enforced by the
// store itself, inside the commit of Deliver, Append and Copy (ErrOverQuota), with the
// rule of Quota.
type Quotas interface {
	// SetQuota sets an account's own limits; a field QuotaDefault follows the default.
	SetQuota(ctx context.Context, accountID int64, l QuotaLimits) error
	// Quota returns an account's setting, limits in force and usage.
	Quota(ctx context.Context, accountID int64) (Quota, error)
}

// Index is the full-text index of message text, kept for IMAP SEARCH.
//
// What matches: the search text and the indexed text are split into words (runs of Unicode
// letters and digits), compared without case and diacritics ("Café" matches "cafe"). The
// words of the search text must follow each other in the field in that order; the last may
// be the beginning of a word ("petr" finds "Petrel"), the others must be whole words. So
// "hello wor" finds "Hello, World!", while "ello" does not find "hello": IMAP's substring
// rule (RFC 9051 §6.4.4) is approximated by word prefixes, which its "fuzzy" allowance
// permits and an index can answer without reading bodies. A search text without any letter
// or digit matches every message.
//
// The index is written in the commit of the delivery (or append) that stores a body, and
// a body leaves it when it is freed; expunged messages are never found.
type Index interface {
	// Search returns, ascending, the UIDs of a mailbox's messages whose field matches text.
	// An unknown mailbox is ErrNotFound.
	Search(ctx context.Context, mailboxID int64, field SearchField, text string) ([]uint32, error)
	// Unindexed lists up to n bodies that were not indexed when the store opened (stored
	// before the index existed, or by a process that stopped before indexing them), lowest
	// first; IndexBlob takes them out of the list.
	Unindexed(ctx context.Context, n int) ([]int64, error)
	// IndexBlob indexes a body that Unindexed listed; a body already indexed, or freed
	// meanwhile, is left alone.
	IndexBlob(ctx context.Context, blobID int64, text SearchText) error
}

// BatchAppender appends a run of messages to one mailbox without a commit of its own for
// each: imports, where one fsync per message would bound the rate to the disk's. It is apart
// from Mail so that a backend can come without it (callers fall back to Append).
type BatchAppender interface {
	// AppendBatch appends msgs, in order, to an account's mailbox by name (which must
	// exist, as for Append). Each message is committed whole or not at all; several share a
	// commit. It returns once all are durable. On an error, the Appended of the messages
	// before the failing one are returned and they are committed; messages after it may
	// be committed as well (a rerun of an import finds them).
	AppendBatch(ctx context.Context, accountID int64, mailbox string, msgs []BatchMessage) ([]Appended, error)
}

// BatchMessage is one message of AppendBatch.
type BatchMessage struct {
	AppendMessage
	// UID, when not 0, is the UID the message is to take: the mailbox's UIDNEXT is raised to
	// it first, as AdoptUIDs(mailbox, 0, UID) does. If UIDNEXT is already above it (a
	// message arrived in between), the message takes the next UID; Appended says which.
	UID uint32
}

// Mail holds messages. Mailboxes are named by ID here, as a session got them from Mailbox;
// an ID that no longer exists is ErrNotFound.
type Mail interface {
	// Deliver commits d durably for all targets (see package invariants).
	Deliver(ctx context.Context, d *Delivery) (Delivered, error)
	// Append adds one message to an account's mailbox by name, with the given flags and
	// internal date. A missing mailbox is ErrNotFound, which IMAP answers with NO
	// [TRYCREATE] (RFC 9051 §6.3.12): Append never falls back to INBOX.
	Append(ctx context.Context, accountID int64, mailbox string, m *AppendMessage) (Appended, error)

	// Messages lists the messages a filter selects, in UID order. An unknown mailbox is
	// ErrNotFound, an empty one is not.
	Messages(ctx context.Context, mailboxID int64, f Filter) ([]Message, error)
	// Vanished lists, in UID order, the UIDs of the tombstones a filter selects: messages
	// expunged (or moved away) from the mailbox with a MODSEQ above f.ChangedSince (VANISHED
	// (EARLIER) of QRESYNC, RFC 7162 §3.2.5.1).
	Vanished(ctx context.Context, mailboxID int64, f Filter) ([]uint32, error)
	// OpenBlob returns the stored bytes of a body. The caller closes it.
	OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error)
	// Parsed returns the cached parse stored with a body at delivery, so that IMAP FETCH of
	// an envelope or structure never re-parses the message.
	Parsed(ctx context.Context, blobID int64) (ParsedMessage, error)

	// SetFlags changes the flags of the given messages of one mailbox (IMAP STORE, with
	// UNCHANGEDSINCE when c.Conditional). Only messages whose flags really change get a new
	// MODSEQ (RFC 7162 §3.1.3); new keywords join the mailbox's Keywords. UIDs not in the
	// mailbox are ignored.
	SetFlags(ctx context.Context, mailboxID int64, uids []uint32, c FlagChange) (FlagsUpdated, error)
	// Expunge removes the given messages from one mailbox, leaving tombstones; bodies no
	// mailbox refers to are freed. UIDs not in the mailbox are ignored.
	Expunge(ctx context.Context, mailboxID int64, uids []uint32) (Expunged, error)
	// Copy copies messages into another mailbox of the same account (RFC 9051 §6.4.7): the
	// copies share the bodies, keep flags and internal date, and get new UIDs in the order
	// of the old ones. A mailbox of another account is ErrNotFound.
	Copy(ctx context.Context, from int64, uids []uint32, to int64) (Copied, error)
	// Move is Copy and an expunge from the source in one transaction (RFC 6851): the source
	// keeps tombstones, the destination gets new UIDs.
	Move(ctx context.Context, from int64, uids []uint32, to int64) (Copied, error)

	// LockMaildrop takes the exclusive POP3 maildrop lock of an account (RFC 1939 §8), or
	// returns ErrLocked while another session anywhere holds it: in this process, another
	// process on the same data, or another node of a shared backend. The lock belongs to
	// the store, not to the caller's memory: it ends when unlock is called or when its
	// holder can no longer hold it (its process exits, its database session ends, its lease
	// runs out), so a crashed node cannot keep a maildrop locked. unlock is idempotent and
	// never releases a lock taken again after it.
	LockMaildrop(ctx context.Context, accountID int64) (unlock func(), err error)
}

// Change is a typed event the store publishes after a commit.
type Change struct {
	Kind      ChangeKind
	AccountID int64
	MailboxID int64
	UIDs      []uint32 // the messages concerned, ascending (none for ChangeMailbox)
	ModSeq    uint64   // the MODSEQ the commit gave the account
}

// ChangeKind names what a Change is about.
type ChangeKind int

const (
	ChangeAdd     ChangeKind = iota + 1 // messages appeared in a mailbox (delivery, append, copy, move)
	ChangeFlags                         // flags of messages changed
	ChangeExpunge                       // messages left a mailbox (expunge, move, rename of INBOX)
	ChangeMailbox                       // a mailbox was created, renamed or deleted, or its special use changed
	// ChangeSubscription: the account's subscriptions changed (MailboxID 0). The change
	// raises the account's MODSEQ (ModSeq), though no mailbox's HIGHESTMODSEQ, so that a
	// node catching up by the account's MODSEQ after lost notifications sees it too.
	// Published by a SubscriptionChanges store only.
	ChangeSubscription
)

// SubscriptionChanges is a store whose change feed also carries subscription changes:
// SetSubscribed publishes a ChangeSubscription when it adds or removes a name, so that IMAP
// NOTIFY's SubscriptionChange event (RFC 5465 §5.5) follows other sessions and nodes
// without polling. A subscription change raises the account's MODSEQ but no mailbox's, so a
// subscriber cut off from the feed (Changes) rereads Subscriptions: no mailbox MODSEQ
// tells it what changed.
type SubscriptionChanges interface {
	Changes
	// SetSubscribedNotify is SetSubscribed, and reports whether it changed anything (and
	// so published a ChangeSubscription).
	SetSubscribedNotify(ctx context.Context, accountID int64, name string, subscribed bool) (changed bool, err error)
}

// Changes lets sessions follow commits.
//
// Events are a wake-up, not the record: the record is the store's state, read by MODSEQ
// (HighestModSeq, Messages and Vanished with ChangedSince). A backend publishes the changes
// committed through it to every subscriber it serves, and a backend shared by several
// nodes publishes theirs too (PostgreSQL: LISTEN/NOTIFY). An event may come late and one
// commit may come as several events, but the events of one account come in MODSEQ order.
// A subscriber that must not miss a change (an IMAP session at its next command) compares
// the mailbox's HighestModSeq with the one it last saw; events tell it to look without
// waiting for a command (IDLE).
type Changes interface {
	// Subscribe returns a channel of changes for one account. The channel is closed if the
	// subscriber falls behind or the store closes; the subscriber then resyncs from the
	// store by MODSEQ. cancel stops it and is idempotent.
	Subscribe(accountID int64) (changes <-chan Change, cancel func())
}

// Store is everything Petrel keeps.
type Store interface {
	Directory
	Mailboxes
	Mail
	Quotas
	Index
	Changes
	Sending
	Queue
	Close() error
}
