-- Schema 2: findings with a lifecycle, the audits that produced them, and the reports sent.
--
-- A finding is identified by its fingerprint (rule:subject_kind:subject_id), so the same problem
-- seen by successive audits is one row whose status moves new -> open -> resolved (or exempted
-- while an exemption covers it). `consecutive` counts the audited snapshots in a row that showed
-- it; remediation's grace period reads it.

CREATE TABLE findings (
    fingerprint  TEXT PRIMARY KEY,
    rule         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    subject      TEXT NOT NULL,
    evidence     TEXT NOT NULL,
    action       TEXT NOT NULL,
    controls     TEXT NOT NULL, -- JSON array of strings
    status       TEXT NOT NULL CHECK (status IN ('new', 'open', 'resolved', 'exempted')),
    exemption    TEXT,
    workspace_id TEXT,
    user_id      TEXT,
    first_seen   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    resolved_at  TEXT,
    first_run    INTEGER NOT NULL,
    last_run     INTEGER NOT NULL,
    consecutive  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX findings_status ON findings (status, rule);

CREATE TABLE audits (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL,
    audited_at TEXT NOT NULL,
    rules      TEXT NOT NULL, -- JSON array of rule outcomes
    n_findings INTEGER NOT NULL,
    n_new      INTEGER NOT NULL,
    n_resolved INTEGER NOT NULL
);
CREATE INDEX audits_run ON audits (run_id);

CREATE TABLE reports (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL,
    generated_at TEXT NOT NULL,
    message_id   TEXT,
    out_dir      TEXT
);
