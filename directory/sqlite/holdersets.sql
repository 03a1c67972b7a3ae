-- blindex SQLite schema, version 6: holders are a set per index (issue 16),
-- records belong to the holder that published them, and access lists are
-- one row per member.
--
-- A holder row per (index, key): every key that proved the number by SMS.
-- A version 5 holder becomes the one member of its index's set, proved at
-- its NotBefore, not on notice, of the epoch of its index's records (or,
-- for an index without records, the current epoch).
--
-- A record is keyed (idx, record_id, holder), so two holders may each store
-- a record of one app, and a bucket fetch is still a range of the primary
-- key. Version 5 records take their index's holder, or, without one, the
-- zero key, which no holder row matches: they are hidden until they expire.
--
-- An access list was two blobs of sorted pseudonyms, so a bucket fetch read
-- the whole list of every record in the range: a 10,000-entry list is
-- 320 KB, and its record's bucket was slower to fetch (issue 19 item 6).
-- A list is now a row per member, and a bucket fetch probes exactly two
-- keys per record (the caller in the allow list, in the deny list),
-- whatever the lists hold. The blobs are copied into acl_members by the
-- migration's Go step (copyACLMembers), which then drops the old tables.

ALTER TABLE holders RENAME TO holders_v5;

CREATE TABLE holders (
	idx          BLOB NOT NULL,
	key_hash     BLOB NOT NULL,
	epoch        INTEGER NOT NULL, -- the lookup epoch whose OPRF output made idx
	first_proof  INTEGER NOT NULL, -- Unix seconds
	last_proof   INTEGER NOT NULL, -- Unix seconds
	notice_proof INTEGER NOT NULL, -- Unix seconds; 0: not on notice
	notice_until INTEGER NOT NULL, -- Unix seconds; 0: not on notice
	label        BLOB,             -- NULL for a holder from before the log
	PRIMARY KEY (idx, key_hash)
) STRICT, WITHOUT ROWID;
-- Housekeeping finds the holders whose notice ran out without reading
-- every row. Only rows on notice are in it: an index of every row would
-- cost about 74 bytes per record (it repeats the key).
CREATE INDEX holders_notice ON holders (epoch, notice_until) WHERE notice_until != 0;

INSERT INTO holders (idx, key_hash, epoch, first_proof, last_proof, notice_proof, notice_until, label)
SELECT h.idx, h.key_hash,
	COALESCE((SELECT MAX(r.epoch) FROM records r WHERE r.idx = h.idx),
		(SELECT COALESCE(MAX(CAST(substr(key, 7) AS INTEGER)), 0) FROM meta WHERE key GLOB 'epoch_[1-9]*')),
	h.not_before, h.not_before, 0, 0, h.label
FROM holders_v5 h;

-- Renaming moves acls' foreign key (and the expiry index) to records_v5.
ALTER TABLE records RENAME TO records_v5;
DROP INDEX records_expiry;

CREATE TABLE records (
	idx        BLOB NOT NULL,
	record_id  BLOB NOT NULL,
	holder     BLOB NOT NULL, -- key hash of the publishing holder
	ciphertext BLOB NOT NULL,
	visibility INTEGER NOT NULL,
	expires_at INTEGER NOT NULL, -- Unix seconds
	updated_at INTEGER NOT NULL, -- Unix seconds
	epoch      INTEGER NOT NULL,
	PRIMARY KEY (idx, record_id, holder)
) STRICT, WITHOUT ROWID;
CREATE INDEX records_expiry ON records (expires_at);

INSERT INTO records (idx, record_id, holder, ciphertext, visibility, expires_at, updated_at, epoch)
SELECT r.idx, r.record_id, COALESCE(h.key_hash, zeroblob(32)), r.ciphertext, r.visibility,
	r.expires_at, r.updated_at, r.epoch
FROM records_v5 r LEFT JOIN holders_v5 h ON h.idx = r.idx;

-- ACL members: kind 1 = allow, 2 = deny; pseudonym is a caller pseudonym.
CREATE TABLE acl_members (
	idx       BLOB NOT NULL,
	holder    BLOB NOT NULL,
	record_id BLOB NOT NULL,
	kind      INTEGER NOT NULL,
	pseudonym BLOB NOT NULL,
	PRIMARY KEY (idx, holder, record_id, kind, pseudonym),
	FOREIGN KEY (idx, record_id, holder) REFERENCES records (idx, record_id, holder) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
