-- Several `otaas serve` replicas on one database (issue 7).
-- Which replica holds each agent (the one whose OpAMP listener it talks to); NULL for rows
-- written before replicas existed.
ALTER TABLE agents ADD COLUMN replica_id TEXT;
CREATE INDEX agents_replica_id ON agents (replica_id);

-- Rollout records are written with compare-and-swap on this counter, so a replica that lost
-- the driving lock (or a pause sent through another replica) never overwrites a newer decision.
ALTER TABLE rollouts ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- The replicas that have run on this database: id, when it (last) started, where it serves.
-- Liveness is not kept here but in each replica's session advisory lock (see src/cluster.rs).
CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    api        TEXT NOT NULL,
    opamp      TEXT NOT NULL
);
