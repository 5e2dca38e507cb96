-- Schema 9: the event stream for SIEMs.
--
-- One row per finding transition (new, resolved, exempted), remediation action (planned,
-- succeeded, failed, skipped), guard trip and finished or failed run, written in the same
-- transaction as what it describes. `id` is the event id: it only grows. `payload` is a JSON
-- object with stable field names. `events_sink` remembers the last id appended to
-- `[events] path`, so that no event is written twice or lost.

CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    type    TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_at ON events (at);

CREATE TABLE events_sink (
    sink    TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
