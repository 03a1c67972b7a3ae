-- blindex PostgreSQL schema, version 2: the transparency log (package
-- translog), as in internal/store/sqlite/log.sql.
--
-- The log is the one global order in the store: every append locks the
-- log_head row (SELECT ... FOR UPDATE) inside the transaction of the change
-- it records, so appends from any number of servers take turns and the log
-- stays one linear history. On distributed SQL that row is a single hot
-- range; it is the log's sequencer, and cannot be sharded.

-- Entry idx of the log, exactly as hashed.
CREATE TABLE log_entries (
	idx  BIGINT PRIMARY KEY CHECK (idx >= 0),
	data BYTEA NOT NULL
);

-- tlog's stored hashes, by stored-hash index (tlog.StoredHashIndex).
CREATE TABLE log_hashes (
	idx  BIGINT PRIMARY KEY CHECK (idx >= 0),
	hash BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);

-- One row: the tree size and root after the last append, and the latest
-- published (witnessed) checkpoint, of a tree of checkpoint_size.
CREATE TABLE log_head (
	id              INTEGER PRIMARY KEY CHECK (id = 1),
	size            BIGINT NOT NULL CHECK (size >= 0),
	root            BYTEA NOT NULL CHECK (octet_length(root) = 32),
	checkpoint_size BIGINT NOT NULL,
	checkpoint      BYTEA
);
INSERT INTO log_head (id, size, root, checkpoint_size) VALUES (1, 0, decode(repeat('00', 32), 'hex'), 0);

-- The log label of each holder's number: the name its entries carry. NULL
-- for a holder claimed before version 2, until its key claims it again.
ALTER TABLE holders ADD COLUMN label BYTEA CHECK (octet_length(label) = 32);
