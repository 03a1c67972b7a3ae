-- Version 4: one row per verification start, several per number, and the
-- code kept as a MAC keyed outside the database.
--
-- Version 1's rows held SHA-256(salt || code), which a reader of the
-- database inverts over the 10^6 codes at once, and a number had one row
-- that a second party's start reused. Pending rows live ten minutes: they
-- are dropped, and their owners start again.
DROP TABLE verifications;

-- Pending SMS verifications, deleted when they end. number_tag is an HMAC
-- of the number under a key derived from the CA key; code_mac is an HMAC of
-- (id, number_tag, code) under another. Neither key is in the database.
CREATE TABLE verifications (
	id         BYTEA PRIMARY KEY, -- 16 random bytes: the verification_id
	number_tag BYTEA NOT NULL,
	code_mac   BYTEA NOT NULL,
	created_at BIGINT NOT NULL, -- Unix seconds
	expires_at BIGINT NOT NULL, -- Unix seconds
	attempts   INTEGER NOT NULL
);
CREATE INDEX verifications_expiry ON verifications (expires_at);
