-- blindex SQLite schema, version 2: the transparency log (package translog).

-- Entry idx of the log, exactly as hashed.
CREATE TABLE log_entries (
	idx  INTEGER PRIMARY KEY,
	data BLOB NOT NULL
) STRICT;

-- tlog's stored hashes, by stored-hash index (tlog.StoredHashIndex).
CREATE TABLE log_hashes (
	idx  INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
) STRICT;

-- One row: the tree size and root after the last append, and the latest
-- published (witnessed) checkpoint. Appends update it, which serializes them.
CREATE TABLE log_head (
	id              INTEGER PRIMARY KEY CHECK (id = 1),
	size            INTEGER NOT NULL,
	root            BLOB NOT NULL,
	checkpoint_size INTEGER NOT NULL,
	checkpoint      BLOB
) STRICT;
INSERT INTO log_head (id, size, root, checkpoint_size) VALUES (1, 0, zeroblob(32), 0);

-- The log label of each holder's number: the name its entries carry.
ALTER TABLE holders ADD COLUMN label BLOB;
