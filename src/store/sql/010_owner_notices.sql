-- Schema 10: owner notices.
--
-- One row per notice mailed to the owner of a key before remediation acts on it, keyed by the
-- finding occurrence (`dedup_key`), so that a persisting finding is noticed once. Written with
-- its `owner_notice.sent` event in one transaction.

CREATE TABLE owner_notices (
    dedup_key    TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    eligible_at  TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    sent_at      TEXT NOT NULL
);
