-- Schema 4: the remediation audit trail.
--
-- Every call orgwarden makes to change the organization is written here as `planned` before the
-- call and moved to `succeeded`, `failed` or `skipped` after it, with the reason, the HTTP status,
-- the request-id and the object as it was read right before the call. A `planned` row found on a
-- later run means the process stopped in between; it is reconciled by reading the object.

CREATE TABLE actions (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL,
    action       TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    subject      TEXT NOT NULL,
    finding      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('planned', 'succeeded', 'failed', 'skipped')),
    reason       TEXT,
    http_status  INTEGER,
    request_id   TEXT,
    before       TEXT,
    planned_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX actions_status ON actions (status);
CREATE INDEX actions_finding ON actions (finding, action);
