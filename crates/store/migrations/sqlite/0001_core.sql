-- Core objects of the control plane. Bodies are the JSON request specs; the columns beside them
-- exist for uniqueness, lookups and references. Times are Unix milliseconds.
CREATE TABLE pipelines (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    revision   BIGINT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE endpoints (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id),
    revision    BIGINT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX endpoints_pipeline ON endpoints (pipeline_id);

CREATE TABLE exporter_bindings (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id),
    revision    BIGINT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX exporter_bindings_pipeline ON exporter_bindings (pipeline_id);

CREATE TABLE agent_groups (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    revision        BIGINT NOT NULL,
    body            TEXT NOT NULL,
    config_revision BIGINT NOT NULL,
    config_hash     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- Which pipelines a group runs: the reference index for "in use" checks.
CREATE TABLE agent_group_pipelines (
    group_id    TEXT NOT NULL REFERENCES agent_groups (id) ON DELETE CASCADE,
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id),
    position    BIGINT NOT NULL,
    PRIMARY KEY (group_id, pipeline_id)
);
CREATE INDEX agent_group_pipelines_pipeline ON agent_group_pipelines (pipeline_id);

-- Every rendered config a group has had (history kept for rollback).
CREATE TABLE group_revisions (
    group_id   TEXT NOT NULL REFERENCES agent_groups (id) ON DELETE CASCADE,
    revision   BIGINT NOT NULL,
    yaml       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, revision)
);

-- API and enrollment tokens: only the SHA-256 of the token is kept.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    scope       TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

-- Server-wide secrets shared by all replicas (e.g. the key endpoint ingest tokens derive from).
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
