-- Agents known from OpAMP (issue 3). The registry in memory is the fast path; this table is
-- its write-behind copy, flushed in batches, loaded at start-up. `state` is the agent record
-- as JSON (labels, capabilities, health, config status, redacted effective config, ...);
-- the columns beside it are what queries filter on.
CREATE TABLE agents (
    id         TEXT PRIMARY KEY,
    group_id   TEXT,
    connected  BOOLEAN NOT NULL,
    last_seen  BIGINT,
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX agents_group_id ON agents (group_id);
