package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"petrel/internal/store"
)

// migrations[i] brings the schema from version i to i+1; PRAGMA user_version holds the
// version. Never edit a released migration: append a new one.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
-- UIDVALIDITY values come from one counter that only grows, so a mailbox deleted and
-- created again never reuses one (RFC 9051 §2.3.1.1). It starts at the creation time so
-- that a database rebuilt from scratch does not repeat values clients may have cached.
INSERT INTO counters (name, value) VALUES ('uidvalidity', CAST(strftime('%s', 'now') AS INTEGER));

CREATE TABLE domains (
	name      TEXT PRIMARY KEY,
	catch_all TEXT REFERENCES accounts (address) ON DELETE SET NULL
);

CREATE TABLE accounts (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	address       TEXT NOT NULL UNIQUE,
	domain        TEXT NOT NULL REFERENCES domains (name),
	password_hash TEXT NOT NULL DEFAULT '',
	scram_sha256  TEXT NOT NULL DEFAULT '',
	pop3_delete   TEXT NOT NULL DEFAULT 'delete',
	created       INTEGER NOT NULL, -- unix nanoseconds
	modseq        INTEGER NOT NULL DEFAULT 0 -- highest MODSEQ of the account (RFC 7162)
);
CREATE INDEX accounts_domain ON accounts (domain);

CREATE TABLE aliases (
	address TEXT PRIMARY KEY,
	domain  TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
	targets TEXT NOT NULL -- JSON array of addresses
);
CREATE INDEX aliases_domain ON aliases (domain);

CREATE TABLE mailboxes (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	uidvalidity INTEGER NOT NULL,
	uidnext     INTEGER NOT NULL DEFAULT 1,
	modseq      INTEGER NOT NULL DEFAULT 0,
	messages    INTEGER NOT NULL DEFAULT 0, -- kept in step with the messages rows
	UNIQUE (account_id, name)
);

CREATE TABLE blobs (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	size       INTEGER NOT NULL,
	mail_from  TEXT NOT NULL,
	received   INTEGER NOT NULL, -- unix nanoseconds
	message_id TEXT NOT NULL,
	subject    TEXT NOT NULL,
	from_addr  TEXT NOT NULL,
	date       INTEGER, -- unix nanoseconds; NULL when the Date header was missing or bad
	envelope   BLOB,
	structure  BLOB,
	data       BLOB NOT NULL -- the first chunk; last column, so metadata reads skip it
);

-- Chunks after the first, for bodies larger than one chunk.
CREATE TABLE blob_chunks (
	blob_id INTEGER NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
	seq     INTEGER NOT NULL,
	data    BLOB NOT NULL,
	PRIMARY KEY (blob_id, seq)
);

CREATE TABLE messages (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	mailbox_id    INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
	uid           INTEGER NOT NULL,
	blob_id       INTEGER NOT NULL REFERENCES blobs (id),
	size          INTEGER NOT NULL,
	internal_date INTEGER NOT NULL, -- unix nanoseconds
	flags         TEXT NOT NULL DEFAULT '', -- sorted, space separated
	modseq        INTEGER NOT NULL,
	UNIQUE (mailbox_id, uid)
);
-- Finding whether a blob is still referenced, when freeing it.
CREATE INDEX messages_blob ON messages (blob_id);
`,
	// 2: bodies are freed in the background (reclaim.go).
	`
-- Bodies no message refers to any more, written in the transaction that removed their
-- last message and deleted later by the background reclaim, so that an expunge does not
-- pay for freeing their pages. A blob listed here is gone for every reader; no message can
-- refer to it again.
CREATE TABLE garbage (
	blob_id INTEGER PRIMARY KEY -- blobs.id; no foreign key: the reclaim deletes both
);
`,
	// 3: what IMAP needs (issue 9): counts and usage kept in the commit, tombstones of
	// expunged messages, special use, keywords and subscriptions. The counts of existing
	// data are computed once here.
	`
-- Usage of the account, for quotas: kept up to date by every commit that adds or removes
-- messages.
ALTER TABLE accounts ADD COLUMN messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN size INTEGER NOT NULL DEFAULT 0;

-- Counts for STATUS and LIST-STATUS, kept in step like messages.
ALTER TABLE mailboxes ADD COLUMN unseen INTEGER NOT NULL DEFAULT 0; -- messages without \Seen
ALTER TABLE mailboxes ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0; -- messages with \Deleted
ALTER TABLE mailboxes ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN special_use TEXT NOT NULL DEFAULT ''; -- RFC 6154 attribute
ALTER TABLE mailboxes ADD COLUMN keywords TEXT NOT NULL DEFAULT ''; -- sorted, space separated

-- Tombstones: one row per message expunged or moved out of a mailbox, with the MODSEQ of
-- that change (QRESYNC VANISHED, RFC 7162 §3.2.5). They go with their mailbox.
CREATE TABLE expunged (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
	uid        INTEGER NOT NULL,
	modseq     INTEGER NOT NULL,
	PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;

-- Subscribed mailbox names (RFC 9051 §6.3.9); a name may be subscribed without existing.
CREATE TABLE subscriptions (
	account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	PRIMARY KEY (account_id, name)
) WITHOUT ROWID;

-- Flags are stored canonical, sorted and space separated, so a flag is one ' '-delimited
-- word of ' ' || flags || ' '.
UPDATE mailboxes SET
	unseen = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id
		AND instr(' ' || m.flags || ' ', ' \Seen ') = 0),
	deleted = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id
		AND instr(' ' || m.flags || ' ', ' \Deleted ') > 0),
	size = (SELECT coalesce(sum(m.size), 0) FROM messages m WHERE m.mailbox_id = mailboxes.id),
	-- The words of the flags that are not system flags, each once, sorted: the flag string
	-- turned into a JSON array (backslashes escaped) and taken apart with json_each.
	keywords = coalesce((SELECT group_concat(k, ' ' ORDER BY k) FROM (
		SELECT DISTINCT j.value AS k FROM messages m,
			json_each('["' || replace(replace(m.flags, '\', '\\'), ' ', '","') || '"]') j
		WHERE m.mailbox_id = mailboxes.id AND m.flags != '' AND substr(j.value, 1, 1) != '\')), ''),
	special_use = CASE name WHEN 'Sent' THEN '\Sent' WHEN 'Drafts' THEN '\Drafts' WHEN 'Trash' THEN '\Trash'
		WHEN 'Junk' THEN '\Junk' WHEN 'Archive' THEN '\Archive' ELSE '' END;
UPDATE accounts SET
	messages = (SELECT coalesce(sum(b.messages), 0) FROM mailboxes b WHERE b.account_id = accounts.id),
	size = (SELECT coalesce(sum(b.size), 0) FROM mailboxes b WHERE b.account_id = accounts.id);
-- Every mailbox that existed was shown to POP3 and management only; an IMAP client sees
-- them all.
INSERT INTO subscriptions (account_id, name) SELECT account_id, name FROM mailboxes;
`,
	// 4: quotas and the full-text index (issue 10).
	`
-- An account's own quota limits (store.QuotaLimits): NULL follows the configured default,
-- 0 is no limit.
ALTER TABLE accounts ADD COLUMN quota_storage INTEGER;
ALTER TABLE accounts ADD COLUMN quota_messages INTEGER;

-- The full-text index of message text, one row per body (rowid = blobs.id), written in the
-- commit that stores the body. Contentless: the text is only in the index, so it costs the
-- index and nothing more; contentless_delete lets a freed body's row be deleted.
CREATE VIRTUAL TABLE search USING fts5(
	subject, hfrom, hto, hcc, hbcc, header, body,
	content = '', contentless_delete = 1,
	tokenize = 'unicode61 remove_diacritics 2'
);
-- A body leaves the index when it is freed, however that happens.
CREATE TRIGGER blobs_search_delete AFTER DELETE ON blobs BEGIN
	DELETE FROM search WHERE rowid = old.id;
END;

-- A search finds bodies, then their messages in one mailbox: with the mailbox and UID in
-- the index on blob_id, that step reads no table row (two to three times faster for a word
-- in most messages). The freeing of bodies uses its first column as before.
DROP INDEX messages_blob;
CREATE INDEX messages_blob ON messages (blob_id, mailbox_id, uid);

-- Bodies stored before the index existed: the server indexes them in the background after
-- the upgrade (store.Index Unindexed / IndexBlob). A freed body leaves the list.
CREATE TABLE search_pending (
	blob_id INTEGER PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE
);
INSERT INTO search_pending (blob_id) SELECT id FROM blobs WHERE id NOT IN (SELECT blob_id FROM garbage);
`,
	// 5: sending limits (issue 11): an account's own limits, and its counters for the
	// current clock hour and UTC day (one row per window kind, reset when a new window
	// starts), so that they survive a restart.
	`
CREATE TABLE sending_limits (
	account_id      INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	hour_messages   INTEGER, -- NULL: the server's default
	hour_recipients INTEGER,
	day_messages    INTEGER,
	day_recipients  INTEGER
);
CREATE TABLE sending_usage (
	account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	period     TEXT NOT NULL,    -- 'hour' or 'day'
	start      INTEGER NOT NULL, -- unix seconds, UTC start of the window
	messages   INTEGER NOT NULL DEFAULT 0,
	recipients INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (account_id, period)
);
`,
	// 6: the outbound queue (issue 11, queue.go) and the MTA-STS policy cache.
	`
-- One row per queued message; its body is a blob of its own (no message row refers to it),
-- listed as garbage when the entry goes.
CREATE TABLE queue (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	blob_id      INTEGER NOT NULL,
	mail_from    TEXT NOT NULL,
	ret          TEXT NOT NULL DEFAULT '',
	envid        TEXT NOT NULL DEFAULT '',
	eight_bit    INTEGER NOT NULL DEFAULT 0,
	utf8_headers INTEGER NOT NULL DEFAULT 0,
	created      INTEGER NOT NULL, -- unix nanoseconds
	held         INTEGER NOT NULL DEFAULT 0
);

-- One row per recipient whose fate is open; delivered and bounced ones are deleted.
CREATE TABLE queue_rcpts (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	queue_id     INTEGER NOT NULL REFERENCES queue (id) ON DELETE CASCADE,
	address      TEXT NOT NULL,
	domain       TEXT NOT NULL,
	notify       TEXT NOT NULL DEFAULT '',
	orcpt        TEXT NOT NULL DEFAULT '',
	orcpt_type   TEXT NOT NULL DEFAULT '',
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL, -- unix nanoseconds
	lease_until  INTEGER NOT NULL DEFAULT 0, -- unix nanoseconds; claimed by an attempt until then
	last_error   TEXT NOT NULL DEFAULT '',
	warned       INTEGER NOT NULL DEFAULT 0,
	bounce       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_rcpts_due ON queue_rcpts (next_attempt);
CREATE INDEX queue_rcpts_queue ON queue_rcpts (queue_id);

CREATE TABLE mta_sts (
	domain TEXT PRIMARY KEY,
	policy BLOB NOT NULL
);
`,
	// 7: accounts moved from Dovecot keep its POP3 unique-ids (issue 16, petrel import).
	`
ALTER TABLE accounts ADD COLUMN pop3_uidl TEXT NOT NULL DEFAULT ''; -- store.POP3UIDLFormat
`,
	// 8: greylisting at the SMTP door (issue 13, store.Greylist).
	`
CREATE TABLE greylist (
	key    TEXT PRIMARY KEY,
	first  INTEGER NOT NULL, -- unix nanoseconds
	last   INTEGER NOT NULL, -- unix nanoseconds
	passed INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX greylist_last ON greylist (last);
`,
	// 9: each body's SHA-256, so that verify finds bytes changed on disk (issue 16). Bodies
	// stored before it have none (NULL) and are checked by size only.
	`
ALTER TABLE blobs ADD COLUMN digest BLOB;
`,
	// 10: Sieve scripts per account and the vacation log (issue 13, sieve.go).
	`
CREATE TABLE sieve_scripts (
	account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	content    TEXT NOT NULL,
	active     INTEGER NOT NULL DEFAULT 0,
	updated    INTEGER NOT NULL, -- unix nanoseconds
	PRIMARY KEY (account_id, name)
);
-- At most one active script per account, kept by the database itself.
CREATE UNIQUE INDEX sieve_scripts_active ON sieve_scripts (account_id) WHERE active;

-- When a vacation reply (handle, a hash) last went to a sender (lower-case).
CREATE TABLE vacation_log (
	account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	handle     TEXT NOT NULL,
	sender     TEXT NOT NULL,
	sent       INTEGER NOT NULL, -- unix nanoseconds
	PRIMARY KEY (account_id, handle, sender)
);
`,
	// 11: the junk classifier's counts per account (issue 13, store.JunkStats). A delivery
	// reads its own tokens' rows by the primary key;
	// junk_trained remembers how each message (by content key) was trained, so that the
	// same message is never counted twice and a correction takes the first verdict back.
	`
CREATE TABLE junk_accounts (
	account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	ham        INTEGER NOT NULL DEFAULT 0, -- messages trained as not junk
	spam       INTEGER NOT NULL DEFAULT 0, -- messages trained as junk
	threshold  REAL, -- NULL: the server's default
	version    INTEGER NOT NULL DEFAULT 0 -- raised by every change of a count (store.JunkState)
);
-- A token row is keyed by a 63-bit hash of its account and text (junk.go, tokenID): a
-- delivery's read is then one integer probe per token, the cheapest lookup SQLite has,
-- and the text is not stored. Two tokens that collide share their counts, which a
-- classifier of hundreds of tokens per message does not notice.
CREATE TABLE junk_tokens (
	id         INTEGER PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	ham        INTEGER NOT NULL DEFAULT 0,
	spam       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX junk_tokens_account ON junk_tokens (account_id);
CREATE TABLE junk_trained (
	account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	key        BLOB NOT NULL,
	junk       INTEGER NOT NULL,
	PRIMARY KEY (account_id, key)
) WITHOUT ROWID;
`,
	// 12: operators of the web admin (issue 14, store.Admins).
	`
ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
`,
	// 13: the keys of IMAP SORT and THREAD per body (issue 10, store.Sorter, sortkeys.go).
	// Bodies stored before have no row; the IMAP server computes theirs from the header at
	// their first SORT or THREAD and stores them (SetSortKeys).
	`
-- The keys are one BLOB (store.PackSortKeys) rather than a column each: a SORT
-- reads them for every message of the mailbox, and the driver costs a lock round per
-- column read, which made eleven columns three times slower to read than one.
CREATE TABLE sort_keys (
	blob_id INTEGER PRIMARY KEY, -- blobs.id; the trigger below deletes the row with it
	keys    BLOB NOT NULL
);
CREATE TRIGGER blobs_sort_keys_delete AFTER DELETE ON blobs BEGIN
	DELETE FROM sort_keys WHERE blob_id = old.id;
END;
`,
	// 14: the webmail's sessions, so that the CLI can list and revoke them (issue 14,
	// store.WebSessions). Deleting an account deletes its sessions.
	`
CREATE TABLE web_sessions (
	id         TEXT PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	created    INTEGER NOT NULL,
	seen       INTEGER NOT NULL,
	remote     TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_account ON web_sessions(account_id);
`,
	// 15: pull sources, outside mailboxes the server polls into an account, and the
	// unique-ids of the messages each delivered (issue 16, store.Pulls).
	`
CREATE TABLE pull_sources (
	id          INTEGER PRIMARY KEY,
	account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
	protocol    TEXT NOT NULL,
	addr        TEXT NOT NULL,
	tls         TEXT NOT NULL,
	ca_file     TEXT NOT NULL,
	username    TEXT NOT NULL,
	secret      BLOB NOT NULL,
	keep        INTEGER NOT NULL,
	every       INTEGER NOT NULL, -- nanoseconds
	folder      TEXT NOT NULL,
	next_poll   INTEGER NOT NULL, -- unix nanoseconds
	last_poll   INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT NOT NULL DEFAULT '',
	failures    INTEGER NOT NULL DEFAULT 0,
	lease_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX pull_sources_account ON pull_sources(account_id);
CREATE TABLE pull_seen (
	source_id INTEGER NOT NULL REFERENCES pull_sources(id) ON DELETE CASCADE,
	uid       TEXT NOT NULL,
	seen      INTEGER NOT NULL, -- unix nanoseconds
	PRIMARY KEY (source_id, uid)
) WITHOUT ROWID;
`,
	// 16: how far an unfinished petrel store copy into this store got (store.Importer), written
	// with each batch it imports, so that the copy resumes there after a crash; deleted when
	// the copy finishes.
	`
CREATE TABLE copy_state (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	state BLOB NOT NULL
);
`,
	// 17: one account's copy of a shared body with its own header fields (issue 13,
	// store.FieldDeliverer, fields.go). Such a blob's data holds only the fields; its
	// bytes are those of base_id with the fields inserted at fields_at.
	`
ALTER TABLE blobs ADD COLUMN base_id INTEGER;
ALTER TABLE blobs ADD COLUMN fields_at INTEGER;
CREATE INDEX blobs_base ON blobs (base_id) WHERE base_id IS NOT NULL;
`,
	// 18: a pull source's last notice (an IMAP UIDVALIDITY change) and the fingerprint of
	// each pulled message, which recognizes it under a new unique-id (store.PullState).
	`
ALTER TABLE pull_sources ADD COLUMN notice TEXT NOT NULL DEFAULT '';
ALTER TABLE pull_seen ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
`,
	// 19: IMAP's per-command reads (issue 10, the mixed load). Each session asks after every
	// command "what changed since MODSEQ n" (messages and tombstones); with only the
	// (mailbox_id, uid) index that read every row of the mailbox. And SELECT, EXPUNGE, CLOSE
	// and SEARCH UNSEEN / FLAGGED list UIDs by a flag: evaluating the flags of every row was
	// most of their cost. A partial index per listing clients ask for holds just the
	// messages it lists; UIDsByFlag spells each condition exactly as here (SQLite uses a
	// partial index only for a query with the same term). Flags are stored normalized
	// (store.NormalizeFlags: system flags in their canonical spelling, space separated).
	`
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);
CREATE INDEX messages_unseen ON messages (mailbox_id, uid) WHERE instr(' ' || flags || ' ', ' \Seen ') = 0;
CREATE INDEX messages_flagged ON messages (mailbox_id, uid) WHERE instr(' ' || flags || ' ', ' \Flagged ') > 0;
CREATE INDEX messages_deleted ON messages (mailbox_id, uid) WHERE instr(' ' || flags || ' ', ' \Deleted ') > 0;
`,
	// 20: a copy of each body's header section (store.HeaderBatch), so that an IMAP header
	// listing reads a few hundred octets per message instead of the whole body and its
	// overflow pages (issue 10, the mixed load). Written with every new body whose header
	// ends in its first chunk; a body without a row (a spliced copy, an imported one, a
	// header that does not end in its first chunk) is served from the body. The bodies
	// already stored get theirs here when the rule of store.HeaderSize is certain from SQL:
	// the first empty line is the first "\n\r\n", with no "\n\n" before it and no empty
	// first line.
	`
CREATE TABLE blob_headers (
	blob_id INTEGER PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
	data    BLOB NOT NULL -- the body's first store.HeaderSize octets
);
INSERT INTO blob_headers (blob_id, data)
	SELECT id, substr(data, 1, instr(data, x'0a0d0a') + 2) FROM blobs
	WHERE base_id IS NULL AND instr(data, x'0a0d0a') > 0
	AND (instr(data, x'0a0a') = 0 OR instr(data, x'0a0a') > instr(data, x'0a0d0a'))
	AND substr(data, 1, 1) != x'0a' AND substr(data, 1, 2) != x'0d0a';
`,
}

// migrate brings the database to the newest schema in one transaction. Only when there is
// something to do does it take the write lock (BEGIN IMMEDIATE), so that opening a current
// database (every CLI command) never waits for a busy server, and two processes opening a
// new database at once do not both run the same migration.
func migrate(ctx context.Context, c *sql.Conn) (err error) {
	version, err := schemaVersion(ctx, c)
	if err != nil || version == len(migrations) {
		return err
	}
	if err := beginImmediate(func() error { _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); return err }); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if err != nil {
			c.ExecContext(ctx, "ROLLBACK")
		}
	}()
	// Again, under the lock: another process may have migrated meanwhile.
	if version, err = schemaVersion(ctx, c); err != nil {
		return err
	}
	for v := version; v < len(migrations); v++ {
		if _, err := c.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate to version %d: %w", v+1, err)
		}
	}
	// PRAGMA takes no parameters; the value is our own integer.
	if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// schemaVersion reads PRAGMA user_version; a version newer than this binary knows is
// store.ErrSchemaTooNew.
func schemaVersion(ctx context.Context, c *sql.Conn) (int, error) {
	var version int
	if err := c.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	if version > len(migrations) {
		return 0, fmt.Errorf("database schema version %d, this binary knows %d: %w", version, len(migrations), store.ErrSchemaTooNew)
	}
	return version, nil
}
