-- Version 5: holders are a set per index (issue 16), and records and their
-- access lists belong to the holder that published them.
--
-- A holder row per (index, key): every key that proved the number by SMS,
-- with its first and last proof and, while it is on notice, the proof that
-- put it there and its deadline (0 when not on notice). A version 4 holder
-- becomes the one member of its index's set, proved at its not_before, not
-- on notice, of the epoch of its index's records (or, for an index without
-- records, the newest epoch).
ALTER TABLE holders RENAME TO holders_v4;

CREATE TABLE holders (
	idx          BYTEA NOT NULL,
	key_hash     BYTEA NOT NULL,
	epoch        INTEGER NOT NULL, -- the lookup epoch whose OPRF output made idx
	first_proof  BIGINT NOT NULL,  -- Unix seconds
	last_proof   BIGINT NOT NULL,  -- Unix seconds
	notice_proof BIGINT NOT NULL,  -- Unix seconds; 0: not on notice
	notice_until BIGINT NOT NULL,  -- Unix seconds; 0: not on notice
	label        BYTEA CHECK (octet_length(label) = 32), -- NULL for a holder from before the log
	PRIMARY KEY (idx, key_hash)
);
-- Housekeeping finds the holders whose notice ran out, and a retired
-- epoch's rows, without reading every row.
CREATE INDEX holders_epoch ON holders (epoch, notice_until);

INSERT INTO holders (idx, key_hash, epoch, first_proof, last_proof, notice_proof, notice_until, label)
SELECT h.idx, h.key_hash,
	COALESCE((SELECT MAX(r.epoch) FROM records r WHERE r.idx = h.idx),
		(SELECT COALESCE(MAX(substr(key, 7)::integer), 0) FROM meta WHERE key ~ '^epoch_[1-9][0-9]*$')),
	h.not_before, h.not_before, 0, 0, h.label
FROM holders_v4 h;

-- Records take their index's holder; a record without one takes the zero
-- key, which no holder row matches: it is hidden until it expires. The
-- access list entries follow their record's key.
ALTER TABLE acl_entries DROP CONSTRAINT acl_entries_idx_record_id_fkey;
ALTER TABLE records ADD COLUMN holder BYTEA;
UPDATE records r SET holder = COALESCE((SELECT h.key_hash FROM holders_v4 h WHERE h.idx = r.idx), decode(repeat('00', 32), 'hex'));
ALTER TABLE records ALTER COLUMN holder SET NOT NULL;
ALTER TABLE records DROP CONSTRAINT records_pkey;
ALTER TABLE records ADD PRIMARY KEY (idx, record_id, holder);

ALTER TABLE acl_entries ADD COLUMN holder BYTEA;
UPDATE acl_entries a SET holder = r.holder FROM records r WHERE r.idx = a.idx AND r.record_id = a.record_id;
DELETE FROM acl_entries WHERE holder IS NULL; -- of no record: unreachable
ALTER TABLE acl_entries ALTER COLUMN holder SET NOT NULL;
ALTER TABLE acl_entries DROP CONSTRAINT acl_entries_pkey;
-- A bucket fetch probes (idx, holder, record_id, kind, caller) for every
-- record: a point lookup on this key, whatever the lists hold.
ALTER TABLE acl_entries ADD PRIMARY KEY (idx, holder, record_id, kind, pseudonym);
ALTER TABLE acl_entries ADD FOREIGN KEY (idx, record_id, holder) REFERENCES records (idx, record_id, holder) ON DELETE CASCADE;

DROP TABLE holders_v4;
