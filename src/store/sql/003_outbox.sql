-- Schema 3: the mail outbox.
--
-- A message is stored, fully rendered (`raw`, RFC 5322 bytes), before any delivery attempt, so a
-- crash or an unreachable mail server never loses it. `status` moves from 'pending' to 'sent'
-- (the server accepted it; it is never sent again) or to 'failed' (the server refused the message
-- itself, e.g. an unknown recipient; not retried). A pending message is tried again once
-- `next_attempt_at` has passed. `message_id` is the Message-ID local part, chosen by the caller
-- and stable, so enqueueing the same message twice stores it once.

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE,
    created_at      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    sender          TEXT NOT NULL,
    recipients      TEXT NOT NULL,   -- JSON array of addresses (the SMTP envelope)
    raw             BLOB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,            -- NULL unless pending
    last_attempt_at TEXT,
    last_error      TEXT,
    sent_at         TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
