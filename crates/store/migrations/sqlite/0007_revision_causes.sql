-- Who and what made each group revision: the API token of the request (its id and description,
-- never the token; id NULL for the --admin-token and server-side causes) and the object the
-- write was about (kind, id, name, its revision after the write). Revisions written before this
-- migration keep NULL in every column.
ALTER TABLE group_revisions ADD COLUMN token_id TEXT;
ALTER TABLE group_revisions ADD COLUMN token_description TEXT;
ALTER TABLE group_revisions ADD COLUMN cause_kind TEXT;
ALTER TABLE group_revisions ADD COLUMN cause_id TEXT;
ALTER TABLE group_revisions ADD COLUMN cause_name TEXT;
ALTER TABLE group_revisions ADD COLUMN cause_revision BIGINT;
