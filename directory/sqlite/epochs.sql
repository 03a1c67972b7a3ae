-- blindex SQLite schema, version 3: lookup epochs. A record belongs to the
-- epoch whose OPRF outputs made its index and its ACL's pseudonyms; bucket
-- fetches are per epoch, and a retired epoch's records are deleted.
ALTER TABLE records ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
DROP INDEX records_bucket;
CREATE INDEX records_bucket ON records (epoch, bucket);
