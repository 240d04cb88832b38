-- Issue 28: the weekly team report (see the SQLite migration of the same name). One row per room
-- and week, written in the transaction that queues the report in the outbox (kind 'report').
CREATE TABLE weekly_reports (
    room           TEXT COLLATE "C" NOT NULL,          -- a configured room name
    week_starts_on TEXT COLLATE "C" NOT NULL,          -- the first day of the week reported on (YYYY-MM-DD, [sweep] timezone)
    queued_at      TEXT COLLATE "C" NOT NULL,          -- when the report was queued
    outbox_id      BIGINT NOT NULL,                    -- its message
    PRIMARY KEY (room, week_starts_on)
);

-- The outbox's third kind: a report names no PR and carries its message in `payload`.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox DROP CONSTRAINT outbox_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('pull_request', 'digest', 'report'));
ALTER TABLE outbox ADD CONSTRAINT outbox_check
    CHECK ((kind = 'pull_request') = (repository_key IS NOT NULL AND number IS NOT NULL));
