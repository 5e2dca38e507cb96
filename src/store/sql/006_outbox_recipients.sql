-- Schema 5: per-recipient delivery in the outbox.
--
-- A message is delivered to each recipient on its own: `delivered_to` holds the addresses the
-- server accepted (never sent the message again), `refused` those it refused for good, each with
-- the server's answer (JSON array of {"address", "reason"}). Recipients in neither are still to
-- be tried. A message sent before this schema went to all its recipients at once.

ALTER TABLE outbox ADD COLUMN delivered_to TEXT NOT NULL DEFAULT '[]';   -- JSON array of addresses
ALTER TABLE outbox ADD COLUMN refused TEXT NOT NULL DEFAULT '[]';        -- JSON array of {address, reason}
UPDATE outbox SET delivered_to = recipients WHERE status = 'sent';
