-- Issue 28: the weekly team report. Each room gets one per week: the report is queued in the
-- outbox (kind 'report', its message rendered when queued, in `payload`) in the same transaction
-- as its row here, whose key makes a second run in the same week (another replica, a restart,
-- `pr-reminder` beside the service) queue nothing.
CREATE TABLE weekly_reports (
    room           TEXT NOT NULL,                     -- a configured room name
    week_starts_on TEXT NOT NULL,                     -- the first day of the week reported on (YYYY-MM-DD, [sweep] timezone)
    queued_at      TEXT NOT NULL,                     -- when the report was queued
    outbox_id      INTEGER NOT NULL,                  -- its message
    PRIMARY KEY (room, week_starts_on)
) WITHOUT ROWID;

-- The outbox gets a third kind, 'report': like a digest it names no PR and carries its message
-- in `payload`, but it neither replaces a waiting digest nor is a Slack room's living digest.
-- SQLite cannot change a CHECK constraint, so the table is rebuilt (as 20261130000000 did), with
-- its columns, rows and indexes as they are.
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY,
    room            TEXT    NOT NULL,                  -- a configured room name
    kind            TEXT    NOT NULL DEFAULT 'pull_request'
                    CHECK (kind IN ('pull_request', 'digest', 'report')),
    repository_key  TEXT,                              -- pull_request rows only
    number          INTEGER,                           -- pull_request rows only
    events          TEXT    NOT NULL,                  -- comma-separated: opened, approvals, ... (digest: 'digest', report: 'report')
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'retrying', 'sending', 'sent', 'failed')),
    created_at      TEXT    NOT NULL,
    not_before      TEXT    NOT NULL,                  -- end of the coalescing window, or next retry
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    sent_at         TEXT,
    message         TEXT,                              -- the text that was sent
    payload         TEXT,                              -- digests and reports: the message rendered when queued
    first_failed_at TEXT,
    CHECK ((kind = 'pull_request') = (repository_key IS NOT NULL AND number IS NOT NULL))
);
INSERT INTO outbox_new (id, room, kind, repository_key, number, events, state, created_at,
                        not_before, attempts, last_error, sent_at, message, payload, first_failed_at)
SELECT id, room, kind, repository_key, number, events, state, created_at, not_before, attempts,
       last_error, sent_at, message, payload, first_failed_at
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE UNIQUE INDEX outbox_pending_per_pr ON outbox (room, repository_key, number)
    WHERE state = 'pending' AND kind = 'pull_request';
CREATE UNIQUE INDEX outbox_pending_digest ON outbox (room) WHERE state = 'pending' AND kind = 'digest';
CREATE INDEX outbox_queue ON outbox (room, state, id);
