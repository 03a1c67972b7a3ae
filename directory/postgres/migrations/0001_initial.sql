-- blindex PostgreSQL schema, version 1: the tables of the SQLite schema
-- (internal/store/sqlite/schema.sql) in PostgreSQL types. No table ever
-- holds a phone number.
--
-- Times are Unix seconds in BIGINT, as in SQLite, so both stores compare the
-- same whole seconds at every expiry boundary; token buckets keep Unix
-- milliseconds. Blobs are BYTEA, which PostgreSQL orders bytewise unsigned,
-- the order Buckets promises.
--
-- On Postgres-compatible distributed SQL (CockroachDB, YugabyteDB):
--   - records and acl_entries are distributed by bucket, the first 32 bits of
--     the index: a bucket fetch then reads one range, and an index's records,
--     its ACL entries and the records-per-holder check stay on one range (the
--     primary keys there become (bucket, idx, record_id, holder) and
--     (bucket, idx, holder, record_id, kind, pseudonym) since schema version
--     5, acl_entries gaining a bucket column);
--   - nothing needs a single sequencer yet: no table has a serial or a
--     global order. A transparency log will (its tree size is one counter);
--   - every other table is keyed by a pseudorandom 32-byte hash (or, for
--     meta, a few fixed names), so hash-sharded primary keys spread them
--     without hot spots; their expiry indexes should be hash-sharded too,
--     since expires_at grows with time and would make a hot tail range.
-- The store relies on row locks (SELECT ... FOR UPDATE) and, since schema
-- version 5, on pg_advisory_xact_lock, which serializes the changes of an
-- index's holders (and migrations). Neither CockroachDB nor YugabyteDB has
-- been tested: on a database where that function does not take a lock
-- held to the end of the transaction, the store is not correct as it
-- stands.

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BYTEA NOT NULL
);

-- Pending SMS verifications. number_tag is derived from the number's OPRF
-- output, not the number itself. Rows are deleted when verification ends.
CREATE TABLE verifications (
	id         BYTEA PRIMARY KEY,
	number_tag BYTEA NOT NULL UNIQUE,
	code_salt  BYTEA NOT NULL,
	code_hash  BYTEA NOT NULL,
	created_at BIGINT NOT NULL, -- Unix seconds
	expires_at BIGINT NOT NULL, -- Unix seconds
	attempts   INTEGER NOT NULL,
	sends      INTEGER NOT NULL
);
CREATE INDEX verifications_expiry ON verifications (expires_at);

-- Sealed records. bucket is the first 32 bits of idx (big-endian, unsigned),
-- the unit of a bucket fetch.
CREATE TABLE records (
	idx        BYTEA NOT NULL,
	record_id  BYTEA NOT NULL,
	bucket     BIGINT NOT NULL CHECK (bucket BETWEEN 0 AND 4294967295),
	ciphertext BYTEA NOT NULL,
	visibility INTEGER NOT NULL,
	expires_at BIGINT NOT NULL, -- Unix seconds
	updated_at BIGINT NOT NULL, -- Unix seconds
	PRIMARY KEY (idx, record_id)
);
CREATE INDEX records_bucket ON records (bucket);
CREATE INDEX records_expiry ON records (expires_at);

-- ACL entries: kind 1 = allow, 2 = deny; pseudonym is a caller pseudonym.
CREATE TABLE acl_entries (
	idx       BYTEA NOT NULL,
	record_id BYTEA NOT NULL,
	kind      INTEGER NOT NULL,
	pseudonym BYTEA NOT NULL,
	PRIMARY KEY (idx, record_id, kind, pseudonym),
	FOREIGN KEY (idx, record_id) REFERENCES records (idx, record_id) ON DELETE CASCADE
);

-- Abuse-limit counters: key is an HMAC of the limited subject (a number,
-- a client network, or nothing for global limits) under a CA secret.
CREATE TABLE counters (
	key          BYTEA NOT NULL,
	window_start BIGINT NOT NULL, -- Unix seconds
	count        INTEGER NOT NULL,
	expires_at   BIGINT NOT NULL, -- Unix seconds
	PRIMARY KEY (key, window_start)
);
CREATE INDEX counters_expiry ON counters (expires_at);

-- The credential key that currently holds each index.
CREATE TABLE holders (
	idx        BYTEA PRIMARY KEY,
	key_hash   BYTEA NOT NULL,
	not_before BIGINT NOT NULL -- Unix seconds
);

-- Records of retired holders: kept as evidence, without their contents.
-- The key includes key_hash: two holders retired in the
-- same second with a record id in common each keep their tombstone.
CREATE TABLE tombstones (
	idx        BYTEA NOT NULL,
	record_id  BYTEA NOT NULL,
	key_hash   BYTEA NOT NULL,
	retired_at BIGINT NOT NULL, -- Unix seconds
	PRIMARY KEY (idx, retired_at, record_id, key_hash)
);

CREATE TABLE revoked_keys (
	key_hash   BYTEA PRIMARY KEY,
	revoked_at BIGINT NOT NULL -- Unix seconds
);

-- Token buckets for evaluation budgets; key is a hash of the budget's
-- purpose and the caller pseudonym.
CREATE TABLE token_buckets (
	key        BYTEA PRIMARY KEY,
	tokens     DOUBLE PRECISION NOT NULL,
	updated_ms BIGINT NOT NULL -- Unix milliseconds
);

-- Answers to requests made with an idempotency key, sealed under a key the
-- server does not keep; key is derived from the client's idempotency key.
CREATE TABLE outcomes (
	key          BYTEA PRIMARY KEY,
	request_hash BYTEA NOT NULL,
	status       INTEGER NOT NULL,
	body         BYTEA NOT NULL,
	expires_at   BIGINT NOT NULL -- Unix seconds
);
CREATE INDEX outcomes_expiry ON outcomes (expires_at);
