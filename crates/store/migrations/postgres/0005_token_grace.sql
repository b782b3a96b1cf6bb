-- Endpoint token rotation grace: after a token_version bump the previous version's token is
-- still rendered until previous_token_until (Unix milliseconds); both NULL when there is none.
ALTER TABLE endpoints ADD COLUMN previous_token_version BIGINT;
ALTER TABLE endpoints ADD COLUMN previous_token_until BIGINT;
CREATE INDEX endpoints_token_grace ON endpoints (previous_token_until);
