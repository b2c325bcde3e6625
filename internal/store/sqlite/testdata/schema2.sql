-- A database written by the schema of version 2 (Petrel at 2931153, before the IMAP
-- preparation): two accounts, deliveries with flags, an expunge, a move and a new mailbox.
-- TestUpgradeFromVersion2 loads it and opens it, so the migrations after 2 run on real data.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO counters VALUES('uidvalidity',1796631114);
CREATE TABLE domains (
	name      TEXT PRIMARY KEY,
	catch_all TEXT REFERENCES accounts (address) ON DELETE SET NULL
);
INSERT INTO domains VALUES('example.org',NULL);
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
INSERT INTO accounts VALUES(1,'a@example.org','example.org','','','delete',1796631101981497508,10);
INSERT INTO accounts VALUES(2,'b@example.org','example.org','','','delete',1796631101988418340,2);
CREATE TABLE aliases (
	address TEXT PRIMARY KEY,
	domain  TEXT NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
	targets TEXT NOT NULL -- JSON array of addresses
);
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
INSERT INTO mailboxes VALUES(1,1,'INBOX',1796631102,5,9,2);
INSERT INTO mailboxes VALUES(2,1,'Sent',1796631103,1,1,0);
INSERT INTO mailboxes VALUES(3,1,'Drafts',1796631104,1,1,0);
INSERT INTO mailboxes VALUES(4,1,'Trash',1796631105,1,1,0);
INSERT INTO mailboxes VALUES(5,1,'Junk',1796631106,1,1,0);
INSERT INTO mailboxes VALUES(6,1,'Archive',1796631107,2,9,1);
INSERT INTO mailboxes VALUES(7,2,'INBOX',1796631108,2,2,1);
INSERT INTO mailboxes VALUES(8,2,'Sent',1796631109,1,1,0);
INSERT INTO mailboxes VALUES(9,2,'Drafts',1796631110,1,1,0);
INSERT INTO mailboxes VALUES(10,2,'Trash',1796631111,1,1,0);
INSERT INTO mailboxes VALUES(11,2,'Junk',1796631112,1,1,0);
INSERT INTO mailboxes VALUES(12,2,'Archive',1796631113,1,1,0);
INSERT INTO mailboxes VALUES(13,1,'Projects/Petrel',1796631114,1,10,0);
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
INSERT INTO blobs VALUES(1,19,'',1796631101990947015,'','','',NULL,NULL,NULL,X'5375626a6563743a206f6e650d0a0d0a310d0a');
INSERT INTO blobs VALUES(2,20,'',1796631101992849413,'','','',NULL,NULL,NULL,X'5375626a6563743a2074776f0d0a0d0a32320d0a');
INSERT INTO blobs VALUES(3,23,'',1796631101993873384,'','','',NULL,NULL,NULL,X'5375626a6563743a2074687265650d0a0d0a3333330d0a');
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
INSERT INTO messages VALUES(1,6,1,1,19,1796631101990947015,'\Seen',9);
INSERT INTO messages VALUES(2,1,2,2,20,1796631101992849413,'$Label1 \Seen',6);
INSERT INTO messages VALUES(3,7,1,2,20,1796631101992849413,'$Label1',2);
INSERT INTO messages VALUES(4,1,3,3,23,1796631101993873384,'\Deleted',7);
CREATE TABLE garbage (
	blob_id INTEGER PRIMARY KEY -- blobs.id; no foreign key: the reclaim deletes both
);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('accounts',2);
INSERT INTO sqlite_sequence VALUES('mailboxes',13);
INSERT INTO sqlite_sequence VALUES('blobs',4);
INSERT INTO sqlite_sequence VALUES('messages',5);
CREATE INDEX accounts_domain ON accounts (domain);
CREATE INDEX aliases_domain ON aliases (domain);
CREATE INDEX messages_blob ON messages (blob_id);
COMMIT;
PRAGMA user_version = 2;
