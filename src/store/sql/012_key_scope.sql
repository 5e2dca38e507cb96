-- Schema 11: the 2026 `scope` of an API key (`{type: "organization"}` or
-- `{type: "workspace", workspace_id}`), for the key_hygiene rule. NULL for a key stored before
-- this step or served by a server without the field; the type is kept as text.

ALTER TABLE api_keys ADD COLUMN scope_type TEXT;
ALTER TABLE api_keys ADD COLUMN scope_workspace_id TEXT;
