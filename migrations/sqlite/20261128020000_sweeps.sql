-- Periodic sweeps: one row per room per sweep, posted or skipped (and why).
CREATE TABLE sweeps (
    id                INTEGER PRIMARY KEY,
    room              TEXT    NOT NULL,
    at                TEXT    NOT NULL,
    trigger           TEXT    NOT NULL CHECK (trigger IN ('http', 'cli', 'schedule')),
    forced            INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
    outcome           TEXT    NOT NULL CHECK (outcome IN ('posted', 'skipped')),
    reason            TEXT,                          -- why skipped
    waiting_review    INTEGER NOT NULL DEFAULT 0,    -- PRs short of approvals
    waiting_on_author INTEGER NOT NULL DEFAULT 0,    -- PRs with changes requested
    outbox_id         INTEGER                        -- the digest message, when posted
);
CREATE INDEX sweeps_last_posted ON sweeps (room, at) WHERE outcome = 'posted';

-- A digest is rendered when the sweep runs (it is a list as of then): its message is kept here.
-- Per-PR notifications leave it NULL and are rendered from the PR's state when sent.
ALTER TABLE outbox ADD COLUMN payload TEXT;

-- Each PR's verdict counts (the author's own never count), kept by the writer from the same
-- snapshot as its `reviews` rows, so that a sweep over every open PR reads one table.
ALTER TABLE pull_requests ADD COLUMN approvals INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pull_requests ADD COLUMN changes_requested INTEGER NOT NULL DEFAULT 0;
UPDATE pull_requests SET
    approvals = (SELECT count(*) FROM reviews r WHERE r.repository = pull_requests.repository
                   AND r.number = pull_requests.number AND r.state = 'approved'
                   AND r.user_key <> pull_requests.author),
    changes_requested = (SELECT count(*) FROM reviews r WHERE r.repository = pull_requests.repository
                   AND r.number = pull_requests.number AND r.state = 'changes_requested'
                   AND r.user_key <> pull_requests.author);
