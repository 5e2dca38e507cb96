-- Schema 1: snapshot runs and the versioned history of the organization.
--
-- Each entity table holds versions: a row is valid from the run that first saw it (valid_from,
-- inclusive) until the first complete run where it had changed or was gone (valid_to, exclusive;
-- NULL while current). The state at complete run R is every row with
-- valid_from <= R AND (valid_to IS NULL OR valid_to > R). An unchanged organization therefore adds
-- only a row to `runs`. valid_from/valid_to carry no foreign key, so retention can drop old runs
-- without rewriting the versions that are still live.

CREATE TABLE runs (
    id                  INTEGER PRIMARY KEY,
    status              TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'abandoned')),
    started_at          TEXT NOT NULL,
    finished_at         TEXT,
    error               TEXT,
    org_id              TEXT,
    org_name            TEXT,
    n_members           INTEGER,
    n_invites           INTEGER,
    n_workspaces        INTEGER,
    n_workspace_members INTEGER,
    n_api_keys          INTEGER,
    requests            INTEGER,
    retries             INTEGER,
    pid                 INTEGER
);
CREATE INDEX runs_status ON runs (status, id);

CREATE TABLE members (
    id         TEXT NOT NULL,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    added_at   TEXT NOT NULL,
    valid_from INTEGER NOT NULL,
    valid_to   INTEGER,
    PRIMARY KEY (id, valid_from)
) WITHOUT ROWID;
CREATE INDEX members_current ON members (id) WHERE valid_to IS NULL;

CREATE TABLE invites (
    id          TEXT NOT NULL,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL,
    status      TEXT NOT NULL,
    invited_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    accepted_at TEXT,
    valid_from  INTEGER NOT NULL,
    valid_to    INTEGER,
    PRIMARY KEY (id, valid_from)
) WITHOUT ROWID;
CREATE INDEX invites_current ON invites (id) WHERE valid_to IS NULL;

CREATE TABLE workspaces (
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    display_color TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    archived_at   TEXT,
    valid_from    INTEGER NOT NULL,
    valid_to      INTEGER,
    PRIMARY KEY (id, valid_from)
) WITHOUT ROWID;
CREATE INDEX workspaces_current ON workspaces (id) WHERE valid_to IS NULL;

CREATE TABLE workspace_members (
    workspace_id   TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    workspace_role TEXT NOT NULL,
    valid_from     INTEGER NOT NULL,
    valid_to       INTEGER,
    PRIMARY KEY (workspace_id, user_id, valid_from)
) WITHOUT ROWID;
CREATE INDEX workspace_members_current ON workspace_members (workspace_id, user_id) WHERE valid_to IS NULL;

CREATE TABLE api_keys (
    id                 TEXT NOT NULL,
    name               TEXT NOT NULL,
    workspace_id       TEXT,
    created_at         TEXT NOT NULL,
    created_by_id      TEXT,
    created_by_type    TEXT,
    partial_key_hint   TEXT,
    status             TEXT NOT NULL,
    expires_at         TEXT,
    principal_type     TEXT,
    principal_user_id  TEXT,
    principal_sa_id    TEXT,
    valid_from         INTEGER NOT NULL,
    valid_to           INTEGER,
    PRIMARY KEY (id, valid_from)
) WITHOUT ROWID;
CREATE INDEX api_keys_current ON api_keys (id) WHERE valid_to IS NULL;
