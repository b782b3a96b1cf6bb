-- Rollout state per agent group (issue 5): which revision is rolling out, from which last good
-- revision, the current step, the agents already moved and the failures seen. `state` is the
-- rollout engine's record as JSON (see `src/rollout/`); a restarted server resumes from it.
CREATE TABLE rollouts (
    group_id   TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
