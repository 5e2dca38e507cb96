-- Schema 11: directory sources' reads, with history.
--
-- One row per read of a `[[directories]]` source: `complete` (its people were written in the same
-- transaction) or `failed` (with the message, and no people). A person's versions are valid from
-- the read that first listed them so until the read where they changed or vanished (`valid_to`,
-- NULL while current), like the organization's history; `status_since_read` is the first read of
-- the unbroken run of versions with the same status, so "since when is this person disabled" and
-- "since when are they gone" are answerable.

CREATE TABLE directory_reads (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('complete', 'failed')),
    error       TEXT,
    n_people    INTEGER NOT NULL DEFAULT 0,
    -- The app assignments as a JSON array of emails, NULL when the source does not read them.
    assigned    TEXT
);

CREATE INDEX directory_reads_by_source ON directory_reads (source, finished_at);

CREATE TABLE directory_people (
    source            TEXT NOT NULL,
    person_id         TEXT NOT NULL,
    valid_from        INTEGER NOT NULL,
    valid_to          INTEGER,
    status            TEXT NOT NULL,
    status_since_read INTEGER NOT NULL,
    -- The person as the directory listed them (JSON of `DirectoryPerson`).
    data              TEXT NOT NULL,
    PRIMARY KEY (source, person_id, valid_from)
);

CREATE INDEX directory_people_current ON directory_people (source, valid_to);
