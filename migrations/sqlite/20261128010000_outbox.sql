-- Chat notifications waiting to be sent, and what became of them.
-- A row is written in the same transaction as the state change that caused it. Events for one PR
-- that arrive while its row is still 'pending' are folded into that row (coalescing); the message
-- is rendered from the PR's state when it is sent, so it shows the latest state.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    room        TEXT    NOT NULL,                    -- a configured room name
    repository  TEXT    NOT NULL,
    number      INTEGER NOT NULL,
    events      TEXT    NOT NULL,                    -- comma-separated: opened, approvals, ...
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'retrying', 'sending', 'sent', 'failed')),
    created_at  TEXT    NOT NULL,
    not_before  TEXT    NOT NULL,                    -- end of the coalescing window, or next retry
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    sent_at     TEXT,
    message     TEXT                                 -- the text that was sent
);
CREATE UNIQUE INDEX outbox_pending_per_pr ON outbox (room, repository, number) WHERE state = 'pending';
CREATE INDEX outbox_queue ON outbox (room, state, id);

-- Build statuses find their PRs by source commit.
CREATE INDEX pull_requests_source_commit ON pull_requests (source_commit);
