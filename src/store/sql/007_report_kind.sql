-- Schema 7: a report is either sent (or, without [mail] recipients, written by the schedule) and
-- then starts the next report's period, or a preview, which is not recorded at all.
--
-- Rows written before schema 7 recorded previews too; a row without a Message-ID cannot be told
-- apart from a preview, so it is taken as one: the next report then covers a longer period
-- instead of hiding the changes a preview swallowed.

ALTER TABLE reports ADD COLUMN kind TEXT NOT NULL DEFAULT 'sent'
    CHECK (kind IN ('sent', 'written', 'preview'));
UPDATE reports SET kind = 'preview' WHERE message_id IS NULL;
