-- Schema 8: the alert outbox, one row per alert and channel.
--
-- An alert is stored before any delivery attempt. `dedup_key` names the occurrence it is about
-- (a finding's fingerprint and first-seen time, an action id, the first run of a failing
-- streak), so enqueueing it again on the next cycle stores nothing: a persisting finding alerts
-- once. `status` moves from 'pending' to 'sent' (the receiver accepted it, never sent again) or
-- 'failed' (refused for good). `payload` is the alert as JSON, rendered per channel on sending.

CREATE TABLE alert_outbox (
    id              INTEGER PRIMARY KEY,
    channel         TEXT NOT NULL,
    dedup_key       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT,
    sent_at         TEXT,
    UNIQUE (channel, dedup_key)
);
CREATE INDEX alert_outbox_due ON alert_outbox (channel, next_attempt_at) WHERE status = 'pending';
