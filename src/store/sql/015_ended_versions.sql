-- Schema 15: an index of the versions that have ended, one per history table. Retention deletes
-- the versions that ended before the oldest kept run (`valid_to <= ?`); without an index that was
-- a scan of every version, current ones included (most of each table), after every snapshot.
-- A current version (`valid_to IS NULL`) is not in these indexes, so a snapshot that changes
-- nothing does not touch them.

CREATE INDEX members_ended ON members (valid_to) WHERE valid_to IS NOT NULL;
CREATE INDEX invites_ended ON invites (valid_to) WHERE valid_to IS NOT NULL;
CREATE INDEX workspaces_ended ON workspaces (valid_to) WHERE valid_to IS NOT NULL;
CREATE INDEX workspace_members_ended ON workspace_members (valid_to) WHERE valid_to IS NOT NULL;
CREATE INDEX api_keys_ended ON api_keys (valid_to) WHERE valid_to IS NOT NULL;
