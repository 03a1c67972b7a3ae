-- blindex SQLite schema, version 4: records clustered by index, access lists
-- as one row per record.
--
-- A bucket is the first 32 bits of idx, so a bucket fetch is a range of the
-- records primary key: the bucket column and its index go. An access list
-- is stored as two blobs of sorted 32-byte caller pseudonyms, so a bucket
-- fetch reads the lists of its range in one scan, and the key is not
-- repeated for every entry.
DROP INDEX records_bucket;
ALTER TABLE records DROP COLUMN bucket;

-- The version 3 entries are copied into acls by the migration's Go step
-- (copyACLEntries), which then drops this table.
ALTER TABLE acl_entries RENAME TO acl_entries_v3;

CREATE TABLE acls (
	idx       BLOB NOT NULL,
	record_id BLOB NOT NULL,
	allow     BLOB NOT NULL, -- sorted caller pseudonyms, 32 bytes each
	deny      BLOB NOT NULL, -- sorted caller pseudonyms, 32 bytes each
	PRIMARY KEY (idx, record_id),
	FOREIGN KEY (idx, record_id) REFERENCES records (idx, record_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
