-- blindex SQLite schema, version 1. No table ever holds a phone number.

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;

-- Pending SMS verifications. number_tag is derived from the number's OPRF
-- output, not the number itself. Rows are deleted when verification ends.
CREATE TABLE verifications (
	id         BLOB PRIMARY KEY,
	number_tag BLOB NOT NULL UNIQUE,
	code_salt  BLOB NOT NULL,
	code_hash  BLOB NOT NULL,
	created_at INTEGER NOT NULL, -- Unix seconds
	expires_at INTEGER NOT NULL, -- Unix seconds
	attempts   INTEGER NOT NULL,
	sends      INTEGER NOT NULL
) STRICT;
CREATE INDEX verifications_expiry ON verifications (expires_at);

-- Sealed records. bucket is the first 32 bits of idx (big-endian), the unit
-- of a bucket fetch.
CREATE TABLE records (
	idx        BLOB NOT NULL,
	record_id  BLOB NOT NULL,
	bucket     INTEGER NOT NULL,
	ciphertext BLOB NOT NULL,
	visibility INTEGER NOT NULL,
	expires_at INTEGER NOT NULL, -- Unix seconds
	updated_at INTEGER NOT NULL, -- Unix seconds
	PRIMARY KEY (idx, record_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX records_bucket ON records (bucket);
CREATE INDEX records_expiry ON records (expires_at);

-- ACL entries: kind 1 = allow, 2 = deny; pseudonym is a caller pseudonym.
CREATE TABLE acl_entries (
	idx       BLOB NOT NULL,
	record_id BLOB NOT NULL,
	kind      INTEGER NOT NULL,
	pseudonym BLOB NOT NULL,
	PRIMARY KEY (idx, record_id, kind, pseudonym),
	FOREIGN KEY (idx, record_id) REFERENCES records (idx, record_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Abuse-limit counters: key is an HMAC of the limited subject (a number,
-- a client network, or nothing for global limits) under a CA secret.
CREATE TABLE counters (
	key          BLOB NOT NULL,
	window_start INTEGER NOT NULL, -- Unix seconds
	count        INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL, -- Unix seconds
	PRIMARY KEY (key, window_start)
) STRICT, WITHOUT ROWID;
CREATE INDEX counters_expiry ON counters (expires_at);

-- The credential key that currently holds each index.
CREATE TABLE holders (
	idx        BLOB PRIMARY KEY,
	key_hash   BLOB NOT NULL,
	not_before INTEGER NOT NULL -- Unix seconds
) STRICT, WITHOUT ROWID;

-- Records of retired holders: kept as evidence, without their contents.
CREATE TABLE tombstones (
	idx        BLOB NOT NULL,
	record_id  BLOB NOT NULL,
	key_hash   BLOB NOT NULL,
	retired_at INTEGER NOT NULL, -- Unix seconds
	PRIMARY KEY (idx, retired_at, record_id, key_hash)
) STRICT, WITHOUT ROWID;

CREATE TABLE revoked_keys (
	key_hash   BLOB PRIMARY KEY,
	revoked_at INTEGER NOT NULL -- Unix seconds
) STRICT, WITHOUT ROWID;

-- Token buckets for evaluation budgets; key is a hash of the budget's
-- purpose and the caller pseudonym.
CREATE TABLE token_buckets (
	key        BLOB PRIMARY KEY,
	tokens     REAL NOT NULL,
	updated_ms INTEGER NOT NULL -- Unix milliseconds
) STRICT, WITHOUT ROWID;

-- Answers to requests made with an idempotency key, sealed under a key the
-- server does not keep; key is derived from the client's idempotency key.
CREATE TABLE outcomes (
	key          BLOB PRIMARY KEY,
	request_hash BLOB NOT NULL,
	status       INTEGER NOT NULL,
	body         BLOB NOT NULL,
	expires_at   INTEGER NOT NULL -- Unix seconds
) STRICT, WITHOUT ROWID;
CREATE INDEX outcomes_expiry ON outcomes (expires_at);
