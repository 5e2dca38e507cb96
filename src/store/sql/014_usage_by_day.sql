-- Schema 14: the daily usage tables keyed by day first.
--
-- A chunk of days is written day after day, each day's rows in key order: keyed by (day, id),
-- every row is appended at the end of its day instead of landing anywhere in a tree of millions
-- of rows keyed by id, and the separate index by day (for replacing and pruning days) goes away,
-- so each row is one B-tree insert instead of two. What the usage rules read, the last day each
-- key and each account was used, is kept in `usage_key_last` and `usage_account_last`, one row
-- per key or account, maintained with the rows they summarise (a chunk written, days pruned).
-- The Claude Code table (a few hundred rows a day) stays as it was.

CREATE TABLE usage_key_day_14 (
    day                 TEXT NOT NULL,      -- YYYY-MM-DD (UTC)
    api_key_id          TEXT NOT NULL,
    account_id          TEXT,               -- the person the report attributes the key's usage to
    input_tokens        INTEGER NOT NULL,   -- uncached + cache creation + cache read
    output_tokens       INTEGER NOT NULL,
    web_search_requests INTEGER NOT NULL,
    PRIMARY KEY (day, api_key_id)
) WITHOUT ROWID;
INSERT INTO usage_key_day_14 (day, api_key_id, account_id, input_tokens, output_tokens,
        web_search_requests)
    SELECT day, api_key_id, account_id, input_tokens, output_tokens, web_search_requests
    FROM usage_key_day ORDER BY day, api_key_id;
DROP TABLE usage_key_day;
ALTER TABLE usage_key_day_14 RENAME TO usage_key_day;

CREATE TABLE usage_account_day_14 (
    day           TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    PRIMARY KEY (day, account_id)
) WITHOUT ROWID;
INSERT INTO usage_account_day_14 (day, account_id, input_tokens, output_tokens)
    SELECT day, account_id, input_tokens, output_tokens
    FROM usage_account_day ORDER BY day, account_id;
DROP TABLE usage_account_day;
ALTER TABLE usage_account_day_14 RENAME TO usage_account_day;

-- The newest day with a row in usage_key_day, per key; in usage_account_day, per account.
CREATE TABLE usage_key_last (
    api_key_id TEXT PRIMARY KEY,
    day        TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO usage_key_last (api_key_id, day)
    SELECT api_key_id, max(day) FROM usage_key_day GROUP BY api_key_id;

CREATE TABLE usage_account_last (
    account_id TEXT PRIMARY KEY,
    day        TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO usage_account_last (account_id, day)
    SELECT account_id, max(day) FROM usage_account_day GROUP BY account_id;
