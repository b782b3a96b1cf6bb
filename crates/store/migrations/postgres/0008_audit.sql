-- The audit trail: one row per write through the REST API and per refused token use (REST,
-- OpAMP, own-metrics ingest). Never a secret: no bodies, no header values, no tokens; an
-- unknown token is kept only as a keyed, truncated fingerprint. Ids are UUIDv7 text, so they
-- sort by the time the entry was recorded and serve as the pagination key. Times are Unix
-- milliseconds.
CREATE TABLE audit_log (
    id                TEXT PRIMARY KEY,
    at                BIGINT NOT NULL,
    interface         TEXT NOT NULL,
    token_id          TEXT,
    token_description TEXT,
    token_fingerprint TEXT,
    source            TEXT,
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,
    object_kind       TEXT,
    object_id         TEXT,
    status            BIGINT NOT NULL,
    error_code        TEXT,
    success           BOOLEAN NOT NULL,
    revision_before   BIGINT,
    revision_after    BIGINT,
    dry_run           BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_token ON audit_log (token_id);
CREATE INDEX audit_log_object ON audit_log (object_kind, object_id);
