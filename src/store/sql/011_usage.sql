-- Schema 11: the organization's usage, as daily aggregates.
--
-- Ingested from the messages usage report (bucket_width 1d, grouped by api_key_id and
-- account_id) and the Claude Code report (one day per call). Rows exist only for (key, day),
-- (account, day) and (actor, day) pairs with usage, so storage follows activity, not the size of
-- the organization. `usage_days` records each UTC day fetched: `complete` once the day was over
-- when it was fetched (the current day is refetched until then). A day's rows and its
-- `usage_days` row are replaced in one transaction per fetched chunk of days.

CREATE TABLE usage_days (
    day        TEXT PRIMARY KEY,            -- YYYY-MM-DD (UTC)
    complete   INTEGER NOT NULL,            -- 1: the day was over when fetched; never refetched
    fetched_at TEXT NOT NULL
);

CREATE TABLE usage_key_day (
    api_key_id          TEXT NOT NULL,
    day                 TEXT NOT NULL,
    account_id          TEXT,               -- the person the report attributes the key's usage to
    input_tokens        INTEGER NOT NULL,   -- uncached + cache creation + cache read
    output_tokens       INTEGER NOT NULL,
    web_search_requests INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, day)
) WITHOUT ROWID;
CREATE INDEX usage_key_day_by_day ON usage_key_day (day);

CREATE TABLE usage_account_day (
    account_id    TEXT NOT NULL,
    day           TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    PRIMARY KEY (account_id, day)
) WITHOUT ROWID;
CREATE INDEX usage_account_day_by_day ON usage_account_day (day);

CREATE TABLE claude_code_day (
    actor_type    TEXT NOT NULL,            -- 'user' (actor = lower-cased email) or 'api_key' (actor = key name)
    actor         TEXT NOT NULL,
    day           TEXT NOT NULL,
    sessions      INTEGER NOT NULL,
    lines_added   INTEGER NOT NULL,
    lines_removed INTEGER NOT NULL,
    commits       INTEGER NOT NULL,
    pull_requests INTEGER NOT NULL,
    PRIMARY KEY (actor_type, actor, day)
) WITHOUT ROWID;
CREATE INDEX claude_code_day_by_day ON claude_code_day (day);

-- One row per ingest attempt's outcome (the newest decides `UsageView::failure`).
CREATE TABLE usage_ingests (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    days        INTEGER NOT NULL,           -- days fetched and stored by this attempt
    requests    INTEGER NOT NULL,
    error       TEXT                        -- NULL when it succeeded
);
