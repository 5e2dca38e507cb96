-- Schema 5: snapshots that cannot be trusted, operator-accepted baselines, and a trail that
-- records a repeated skip once.
--
-- `n_admins` counts the admin/primary_owner members of a complete run. `suspect` says why a
-- complete run is implausible (no members, or no admin): it is stored, because it is what the API
-- said, but never used as a baseline. `accepted_by`/`accepted_at` record an operator's
-- `cleanup --accept-baseline RUN`. `actions.last_checked_at` is when a skipped action was last
-- found skipped for the same reason (the row is updated instead of a new one being written).

ALTER TABLE runs ADD COLUMN n_admins INTEGER;
ALTER TABLE runs ADD COLUMN suspect TEXT;
ALTER TABLE runs ADD COLUMN accepted_by TEXT;
ALTER TABLE runs ADD COLUMN accepted_at TEXT;
ALTER TABLE actions ADD COLUMN last_checked_at TEXT;

-- Complete runs written before this schema: count their admins from the history, and mark the
-- implausible ones suspect, so an old empty snapshot cannot become a baseline either.
UPDATE runs SET n_admins = (
    SELECT count(*) FROM members m
    WHERE m.valid_from <= runs.id AND (m.valid_to IS NULL OR m.valid_to > runs.id)
      AND m.role IN ('admin', 'owner', 'primary_owner')
) WHERE status = 'complete';
UPDATE runs SET suspect = 'the snapshot has no members at all'
    WHERE status = 'complete' AND n_members = 0;
UPDATE runs SET suspect = 'the snapshot has ' || n_members || ' members but no admin or primary_owner'
    WHERE status = 'complete' AND n_members > 0 AND n_admins = 0;
