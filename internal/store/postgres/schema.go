package postgres

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"petrel/internal/store"
)

// migrations[i] brings the schema from version i to i+1; the one row of schema_version
// holds the version. Never edit a released migration: append a new one. The first one is
// the whole schema of the embedded store as of this backend's creation, in PostgreSQL's
// types: the two backends keep the same rows, so a store can move between them.
var migrations = []string{
	// 1: initial schema.
	`
-- UIDVALIDITY values come from a sequence: never reused, and taking one locks nothing, so
-- concurrent mailbox creations on several nodes do not queue behind one counter row. It
-- starts at the creation time so that a database rebuilt from scratch does not repeat
-- values clients may have cached.
CREATE SEQUENCE uidvalidity MINVALUE 1 MAXVALUE 4294967295;
SELECT setval('uidvalidity', extract(epoch FROM now())::bigint);

CREATE TABLE accounts (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	address        text NOT NULL UNIQUE,
	domain         text NOT NULL,
	password_hash  text NOT NULL DEFAULT '',
	scram_sha256   text NOT NULL DEFAULT '',
	pop3_delete    text NOT NULL DEFAULT 'delete',
	pop3_uidl      text NOT NULL DEFAULT '',
	created        bigint NOT NULL, -- unix nanoseconds
	-- Highest MODSEQ of the account (RFC 7162). Every write to the account's mailboxes
	-- raises it with UPDATE ... RETURNING, so the row lock orders the writers of one
	-- account across every node: MODSEQs and UIDs are never given twice.
	modseq         bigint NOT NULL DEFAULT 0,
	messages       bigint NOT NULL DEFAULT 0, -- usage, kept by every commit
	size           bigint NOT NULL DEFAULT 0,
	quota_storage  bigint, -- NULL: the configured default
	quota_messages bigint
);
CREATE INDEX accounts_domain ON accounts (domain);

CREATE TABLE domains (
	name      text PRIMARY KEY,
	catch_all text REFERENCES accounts (address) ON DELETE SET NULL
);
ALTER TABLE accounts ADD FOREIGN KEY (domain) REFERENCES domains (name);

CREATE TABLE aliases (
	address text PRIMARY KEY,
	domain  text NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
	targets text NOT NULL -- JSON array of addresses
);
CREATE INDEX aliases_domain ON aliases (domain);

CREATE TABLE mailboxes (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name        text NOT NULL,
	uidvalidity bigint NOT NULL,
	uidnext     bigint NOT NULL DEFAULT 1,
	modseq      bigint NOT NULL DEFAULT 0,
	messages    bigint NOT NULL DEFAULT 0,
	unseen      bigint NOT NULL DEFAULT 0,
	deleted     bigint NOT NULL DEFAULT 0,
	size        bigint NOT NULL DEFAULT 0,
	special_use text NOT NULL DEFAULT '',
	keywords    text NOT NULL DEFAULT '', -- sorted, space separated
	UNIQUE (account_id, name)
);

-- Message bytes, once per distinct body (SHA-256): the same message arriving twice (a
-- mailing list and a direct copy) is stored once. EXTERNAL storage keeps it uncompressed
-- out of line, so reading a large body in slices (substring) fetches only those slices.
CREATE TABLE blob_data (
	digest bytea PRIMARY KEY,
	data   bytea NOT NULL
);
ALTER TABLE blob_data ALTER COLUMN data SET STORAGE EXTERNAL;

-- One row per delivery: the cached parse and envelope facts, pointing at the bytes.
CREATE TABLE blobs (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	digest     bytea NOT NULL REFERENCES blob_data (digest),
	size       bigint NOT NULL,
	mail_from  text NOT NULL,
	received   bigint NOT NULL, -- unix nanoseconds
	message_id text NOT NULL,
	subject    text NOT NULL,
	from_addr  text NOT NULL,
	date       bigint, -- unix nanoseconds; NULL when the Date header was missing or bad
	envelope   bytea,
	structure  bytea
);
CREATE INDEX blobs_digest ON blobs (digest);

CREATE TABLE messages (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	mailbox_id    bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
	uid           bigint NOT NULL,
	blob_id       bigint NOT NULL REFERENCES blobs (id),
	size          bigint NOT NULL,
	internal_date bigint NOT NULL, -- unix nanoseconds
	flags         text NOT NULL DEFAULT '', -- sorted, space separated
	modseq        bigint NOT NULL,
	UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_blob ON messages (blob_id, mailbox_id, uid);

-- Tombstones of expunged messages (QRESYNC VANISHED, RFC 7162 §3.2.5).
CREATE TABLE expunged (
	mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
	uid        bigint NOT NULL,
	modseq     bigint NOT NULL,
	PRIMARY KEY (mailbox_id, uid)
);

CREATE TABLE subscriptions (
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       text NOT NULL,
	PRIMARY KEY (account_id, name)
);

-- The full-text index: one row per body, one tsvector per field, all under one GIN index.
-- The words are split, case-folded and stripped of diacritics by Petrel (search.go), so
-- PostgreSQL's 'simple' configuration only has to keep them.
CREATE TABLE search (
	blob_id bigint PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
	subject tsvector NOT NULL,
	hfrom   tsvector NOT NULL,
	hto     tsvector NOT NULL,
	hcc     tsvector NOT NULL,
	hbcc    tsvector NOT NULL,
	header  tsvector NOT NULL,
	body    tsvector NOT NULL
);
CREATE INDEX search_words ON search USING gin (subject, hfrom, hto, hcc, hbcc, header, body);
CREATE TABLE search_pending (
	blob_id bigint PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE
);

CREATE TABLE sending_limits (
	account_id      bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	hour_messages   bigint,
	hour_recipients bigint,
	day_messages    bigint,
	day_recipients  bigint
);
CREATE TABLE sending_usage (
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	period     text NOT NULL,
	start      bigint NOT NULL,
	messages   bigint NOT NULL DEFAULT 0,
	recipients bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (account_id, period)
);

CREATE TABLE queue (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	blob_id      bigint NOT NULL REFERENCES blobs (id),
	mail_from    text NOT NULL,
	ret          text NOT NULL DEFAULT '',
	envid        text NOT NULL DEFAULT '',
	eight_bit    boolean NOT NULL DEFAULT false,
	utf8_headers boolean NOT NULL DEFAULT false,
	created      bigint NOT NULL,
	held         boolean NOT NULL DEFAULT false
);
CREATE TABLE queue_rcpts (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	queue_id     bigint NOT NULL REFERENCES queue (id) ON DELETE CASCADE,
	address      text NOT NULL,
	domain       text NOT NULL,
	notify       text NOT NULL DEFAULT '',
	orcpt        text NOT NULL DEFAULT '',
	orcpt_type   text NOT NULL DEFAULT '',
	attempts     bigint NOT NULL DEFAULT 0,
	next_attempt bigint NOT NULL,
	lease_until  bigint NOT NULL DEFAULT 0,
	last_error   text NOT NULL DEFAULT '',
	warned       boolean NOT NULL DEFAULT false,
	bounce       boolean NOT NULL DEFAULT false
);
CREATE INDEX queue_rcpts_due ON queue_rcpts (next_attempt);
CREATE INDEX queue_rcpts_queue ON queue_rcpts (queue_id);

CREATE TABLE mta_sts (
	domain text PRIMARY KEY,
	policy bytea NOT NULL
);
`,
	// 2: what the embedded store gained since (its migrations 8, 10, 11 and 12): greylisting,
	// Sieve scripts and the vacation log, the junk classifier's counts, and web admins.
	`
CREATE TABLE greylist (
	key    text PRIMARY KEY,
	first  bigint NOT NULL, -- unix nanoseconds
	last   bigint NOT NULL, -- unix nanoseconds
	passed boolean NOT NULL DEFAULT false
);
CREATE INDEX greylist_last ON greylist (last);

CREATE TABLE sieve_scripts (
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       text NOT NULL,
	content    text NOT NULL,
	active     boolean NOT NULL DEFAULT false,
	updated    bigint NOT NULL, -- unix nanoseconds
	PRIMARY KEY (account_id, name)
);
-- At most one active script per account, kept by the database itself.
CREATE UNIQUE INDEX sieve_scripts_active ON sieve_scripts (account_id) WHERE active;

-- When a vacation reply (handle, a hash) last went to a sender (lower-case).
CREATE TABLE vacation_log (
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	handle     text NOT NULL,
	sender     text NOT NULL,
	sent       bigint NOT NULL, -- unix nanoseconds
	PRIMARY KEY (account_id, handle, sender)
);

CREATE TABLE junk_accounts (
	account_id bigint PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	ham        bigint NOT NULL DEFAULT 0, -- messages trained as not junk
	spam       bigint NOT NULL DEFAULT 0, -- messages trained as junk
	threshold  double precision, -- NULL: the server's default
	version    bigint NOT NULL DEFAULT 0 -- raised by every change of a count (store.JunkState)
);
-- Keyed by store.JunkTokenID (a 63-bit hash of account and token), as in the embedded store.
CREATE TABLE junk_tokens (
	id         bigint PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	ham        bigint NOT NULL DEFAULT 0,
	spam       bigint NOT NULL DEFAULT 0
);
CREATE INDEX junk_tokens_account ON junk_tokens (account_id);
CREATE TABLE junk_trained (
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	key        bytea NOT NULL,
	junk       boolean NOT NULL,
	PRIMARY KEY (account_id, key)
);

ALTER TABLE accounts ADD COLUMN admin boolean NOT NULL DEFAULT false;
`,
	// 3: the pull sources (issue 16, store.Pulls): outside mailboxes the server polls into an
	// account, and the unique-ids of the messages each delivered.
	`
CREATE TABLE pull_sources (
	id          bigserial PRIMARY KEY,
	account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	protocol    text NOT NULL,
	addr        text NOT NULL,
	tls         text NOT NULL,
	ca_file     text NOT NULL,
	username    text NOT NULL,
	secret      bytea NOT NULL,
	keep        boolean NOT NULL,
	every       bigint NOT NULL, -- nanoseconds
	folder      text NOT NULL,
	next_poll   bigint NOT NULL, -- unix nanoseconds
	last_poll   bigint NOT NULL DEFAULT 0,
	last_error  text NOT NULL DEFAULT '',
	failures    integer NOT NULL DEFAULT 0,
	lease_until bigint NOT NULL DEFAULT 0
);
CREATE INDEX pull_sources_account ON pull_sources (account_id);
CREATE INDEX pull_sources_due ON pull_sources (next_poll);
CREATE TABLE pull_seen (
	source_id bigint NOT NULL REFERENCES pull_sources (id) ON DELETE CASCADE,
	uid       text NOT NULL,
	seen      bigint NOT NULL, -- unix nanoseconds
	PRIMARY KEY (source_id, uid)
);
`,
	// 4: the keys of IMAP SORT and THREAD (store.Sorter, the embedded store's migration 13):
	// one row per body, written in the delivery's statement, deleted with the body. The keys
	// are one bytea (store.PackSortKeys), read in one piece by a SORT.
	`
CREATE TABLE sort_keys (
	blob_id bigint PRIMARY KEY REFERENCES blobs (id) ON DELETE CASCADE,
	keys    bytea NOT NULL
);
`,
	// 5: the webmail's sessions (store.WebSessions, the embedded store's migration 14), in the
	// shared database so that every node knows every session and a revocation ends it on all.
	`
CREATE TABLE web_sessions (
	id         text PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	created    bigint NOT NULL, -- unix seconds
	seen       bigint NOT NULL, -- unix seconds
	remote     text NOT NULL
);
CREATE INDEX web_sessions_account ON web_sessions (account_id);
`,
	// 6: how far an unfinished petrel store copy into this database got (store.Importer),
	// written with each batch it imports, so that the copy resumes there after a crash;
	// deleted when the copy finishes.
	`
CREATE TABLE copy_state (
	id    integer PRIMARY KEY CHECK (id = 1),
	state bytea NOT NULL
);
`,
	// 7: one account's copy of a shared body with its own header fields (issue 13,
	// store.FieldDeliverer, fields.go): its bytes are blob_data's with fields at fields_at.
	`
ALTER TABLE blobs ADD COLUMN fields bytea;
ALTER TABLE blobs ADD COLUMN fields_at bigint;
`,
	// 8: pull_sources.failures was the one integer count; every other count and the
	// embedded store's are 64-bit, and a copy between the two wanted one type for it.
	`
ALTER TABLE pull_sources ALTER COLUMN failures TYPE bigint;
`,
	// 9: a pull source's last notice and the fingerprint of each pulled message
	// (store.PullState, the embedded store's migration 18).
	`
ALTER TABLE pull_sources ADD COLUMN notice text NOT NULL DEFAULT '';
ALTER TABLE pull_seen ADD COLUMN fingerprint text NOT NULL DEFAULT '';
`,
	// 10: an IMAP session's poll after each command, "what changed since MODSEQ n" in
	// messages and tombstones, reads the changes instead of every row of the mailbox (the
	// embedded store's migration 19; PostgreSQL's planner picks the index from its
	// statistics).
	`
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);
`,
	// 11: rows of bodies and of search vectors stay in the table's page up to the size of a
	// page (8160 bytes, the largest target PostgreSQL allows) instead of 2 KB. A 4 KB body
	// used to go out of line into three TOAST chunks (three more rows, three more index
	// entries, an OID found for each value) and a large tsvector was compressed with pglz:
	// together about an eighth of the database's CPU per delivery (docs/benchmarks.md).
	// Larger bodies still go out of line uncompressed (STORAGE EXTERNAL), so reading them in
	// slices fetches only those slices.
	`
ALTER TABLE blob_data SET (toast_tuple_target = 8160);
ALTER TABLE search SET (toast_tuple_target = 8160);
`,
	// 12: petrel_refuse raises an error with a code of Petrel's own (class PT, mail.go),
	// so that a delivery's checks (quota, mailbox, UIDs) run inside its statements and a
	// refusal aborts the transaction on the server: its COMMIT can then go in the same
	// pipelined batch, one round trip instead of two.
	`
CREATE FUNCTION petrel_refuse(code text, detail text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = code, MESSAGE = detail;
END
$$;
`,
	// 13: DKIM keys (store.DKIMKeys), made once for every node: the first node to insert a
	// domain's key under a selector wins, the others read it back. private is what the
	// node gives, sealed with the pull key file (app), never the bare key.
	`
CREATE TABLE dkim_keys (
	domain text NOT NULL,
	selector text NOT NULL,
	private bytea NOT NULL,
	PRIMARY KEY (domain, selector)
);
`,
	// 14: fewer rows and checks per delivery. The search index loses its foreign key to
	// blobs: its row is derived from a body, written in the statement that stores it and
	// deleted by freeBlobs in the statement that frees it (IndexBlob, which adds one later,
	// locks the body's row first), so the key guarded nothing the code does not, and it
	// cost a check per delivery. The sort keys move into the body's own row (a column of
	// blobs instead of a table of their own): one row, one index entry and one foreign-key
	// check fewer per delivery, and they go with the body by themselves
	// (docs/benchmarks.md).
	`
ALTER TABLE search DROP CONSTRAINT search_blob_id_fkey;
ALTER TABLE blobs ADD COLUMN sort_keys bytea;
UPDATE blobs SET sort_keys = k.keys FROM sort_keys k WHERE k.blob_id = blobs.id;
DROP TABLE sort_keys;
`,
}

// migrationLock is the key of the advisory lock that serializes migrations, so that
// several nodes starting at once against a new database do not run the same migration.
var migrationLock = func() int64 {
	h := fnv.New64a()
	h.Write([]byte("petrel schema migration"))
	return int64(h.Sum64() >> 1)
}()

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(migrations) }

// migrate brings the database to the newest schema, each migration in its own transaction
// with the version row, under an advisory lock. It returns the versions before and after.
func migrate(ctx context.Context, pool *pgxpool.Pool) (from, to int, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	from, err = readVersion(ctx, conn.Conn())
	if err != nil {
		return 0, 0, err
	}
	for v := from; v < len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM schema_version; INSERT INTO schema_version (version) VALUES (`+fmt.Sprint(v+1)+`)`)
			return err
		})
		if err != nil {
			return from, v, fmt.Errorf("migrate to version %d: %w", v+1, err)
		}
	}
	return from, len(migrations), nil
}

// readVersion reads the schema version (0 for an empty database); one newer than this
// binary knows is store.ErrSchemaTooNew.
func readVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var version int
	err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&version)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	if version > len(migrations) {
		return 0, fmt.Errorf("database schema version %d, this binary knows %d: %w", version, len(migrations), store.ErrSchemaTooNew)
	}
	return version, nil
}
