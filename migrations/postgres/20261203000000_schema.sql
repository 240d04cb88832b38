-- pr-reminder's schema on PostgreSQL: the same tables, columns and operator views as the SQLite
-- migrations in ../sqlite/ reach at 20261202000000, in one step (PostgreSQL support starts here).
-- From now on a change of schema is one new migration in EACH folder.
--
-- Differences from SQLite, all deliberate:
-- - Instants stay text ('2023-05-16T10:33:04.281505Z', six fractional digits, UTC) so that every
--   statement binds and compares them as on SQLite; identifiers and instants use the "C" collation:
--   text order is then byte order (time order, and the commit-hash prefix ranges) whatever the
--   database's locale.
-- - Flags (`draft`, `forced`) are booleans; counts and numbers are bigint (what the code reads).
-- - Case-insensitive names (SQLite's COLLATE NOCASE) are looked up through lower(...) indexes.
-- - `room_leases` exists here only: with several replicas, one at a time sends a room's messages.

CREATE TABLE settings (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO settings (name, value) VALUES ('required_approvals', '2');

-- repository_key = 'cloud/{uuid}' for Bitbucket Cloud (the uuid with its braces), or
--                  'cloud/name/{full_name}' for the rare payload without a uuid (templates),
--                  'datacenter/{host[:port]}/{id}' for Bitbucket Data Center;
-- full_name is the current name, and the views show it as `repository`.
CREATE TABLE repositories (
    repository_key     TEXT COLLATE "C" PRIMARY KEY,
    full_name          TEXT COLLATE "C" NOT NULL,     -- current 'workspace/slug'
    uuid               TEXT,
    url                TEXT,
    required_approvals BIGINT,                        -- NULL: settings.required_approvals
    named_on           TEXT COLLATE "C"               -- Bitbucket's time of the change that showed this name
);
CREATE INDEX repositories_full_name ON repositories (lower(full_name));

-- Bitbucket accounts. user_key is the uuid, or account_id / username for payloads without one.
CREATE TABLE users (
    user_key     TEXT COLLATE "C" PRIMARY KEY,
    uuid         TEXT,
    account_id   TEXT,
    nickname     TEXT,
    username     TEXT,                                -- legacy payloads only
    display_name TEXT,
    email        TEXT
);

CREATE TABLE pull_requests (
    repository_key     TEXT COLLATE "C" NOT NULL REFERENCES repositories (repository_key),
    number             BIGINT  NOT NULL,
    title              TEXT    NOT NULL,
    author             TEXT COLLATE "C" NOT NULL REFERENCES users (user_key),
    source_branch      TEXT,
    source_commit      TEXT COLLATE "C",              -- as Bitbucket gives it (Cloud: 12 hex digits)
    destination_branch TEXT,
    state              TEXT    NOT NULL
                       CHECK (state IN ('OPEN', 'MERGED', 'DECLINED', 'SUPERSEDED', 'DELETED')),
    draft              BOOLEAN NOT NULL DEFAULT false,
    created_on         TEXT COLLATE "C" NOT NULL,
    updated_on         TEXT COLLATE "C" NOT NULL,     -- of the newest snapshot applied; older ones lose
    last_activity_on   TEXT COLLATE "C" NOT NULL,
    url                TEXT,
    approvals          BIGINT  NOT NULL DEFAULT 0,    -- verdicts, the author's own never counted
    changes_requested  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (repository_key, number)
);
CREATE INDEX pull_requests_open ON pull_requests (state, created_on);
CREATE INDEX pull_requests_source_commit ON pull_requests (source_commit);

-- Everyone attached to a PR: requested reviewers and other participants, with their verdict.
CREATE TABLE reviews (
    repository_key TEXT COLLATE "C" NOT NULL,
    number         BIGINT NOT NULL,
    user_key       TEXT COLLATE "C" NOT NULL REFERENCES users (user_key),
    role           TEXT   NOT NULL CHECK (role IN ('REVIEWER', 'PARTICIPANT')),
    state          TEXT   NOT NULL CHECK (state IN ('approved', 'changes_requested', 'none')),
    state_on       TEXT COLLATE "C",                  -- Bitbucket's participated_on
    snapshot_on    TEXT COLLATE "C" NOT NULL,         -- updated_on of the PR snapshot that wrote the row
    PRIMARY KEY (repository_key, number, user_key),
    FOREIGN KEY (repository_key, number) REFERENCES pull_requests (repository_key, number) ON DELETE CASCADE
);
CREATE INDEX reviews_user ON reviews (user_key);

-- Build results per commit. A PR's build is that of its source commit.
CREATE TABLE commit_statuses (
    commit_hash    TEXT COLLATE "C" NOT NULL,         -- full 40 hex digits, lower case
    key            TEXT COLLATE "C" NOT NULL,         -- the build's key (one row per CI job)
    repository_key TEXT COLLATE "C" NOT NULL REFERENCES repositories (repository_key),
    state          TEXT NOT NULL CHECK (state IN ('SUCCESSFUL', 'FAILED', 'INPROGRESS', 'STOPPED')),
    name           TEXT,
    url            TEXT,
    updated_on     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (commit_hash, key)
);

-- Every delivery that reached /webhooks/bitbucket, including refused ones (their body is not kept).
CREATE TABLE deliveries (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    request_id  TEXT COLLATE "C",                     -- X-Request-UUID / X-Request-Id
    event_key   TEXT,                                 -- X-Event-Key
    received_at TEXT COLLATE "C" NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('processed', 'ignored', 'rejected')),
    reason      TEXT,                                 -- why ignored or rejected
    repository  TEXT,
    pr_number   BIGINT,
    attempt     BIGINT,                               -- X-Attempt-Number
    flavour     TEXT CHECK (flavour IN ('cloud', 'datacenter'))
);
-- A request id is accepted once, whichever replica took it; a rejected attempt may be retried.
CREATE UNIQUE INDEX deliveries_accepted_request_id ON deliveries (request_id) WHERE outcome <> 'rejected';
CREATE INDEX deliveries_flavour ON deliveries (flavour, id);
CREATE INDEX deliveries_rejected ON deliveries (received_at) WHERE outcome = 'rejected';

-- Chat notifications waiting to be sent, and what became of them (see the SQLite migrations).
CREATE TABLE outbox (
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    room            TEXT COLLATE "C" NOT NULL,         -- a configured room name
    kind            TEXT NOT NULL DEFAULT 'pull_request' CHECK (kind IN ('pull_request', 'digest')),
    repository_key  TEXT COLLATE "C",                  -- pull_request rows only
    number          BIGINT,                            -- pull_request rows only
    events          TEXT NOT NULL,                     -- comma-separated: opened, approvals, ... (digest: 'digest')
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'retrying', 'sending', 'sent', 'failed')),
    created_at      TEXT COLLATE "C" NOT NULL,
    not_before      TEXT COLLATE "C" NOT NULL,         -- end of the coalescing window, or next retry
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    sent_at         TEXT COLLATE "C",
    message         TEXT,                              -- the text that was sent
    payload         TEXT,                              -- digests: the message rendered when the sweep ran
    first_failed_at TEXT COLLATE "C",
    CHECK ((kind = 'digest') = (repository_key IS NULL AND number IS NULL))
);
CREATE UNIQUE INDEX outbox_pending_per_pr ON outbox (room, repository_key, number)
    WHERE state = 'pending' AND kind = 'pull_request';
CREATE UNIQUE INDEX outbox_pending_digest ON outbox (room) WHERE state = 'pending' AND kind = 'digest';
CREATE INDEX outbox_queue ON outbox (room, state, id);

-- Periodic sweeps: one row per room per sweep, posted or skipped (and why).
CREATE TABLE sweeps (
    id                BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    room              TEXT COLLATE "C" NOT NULL,
    at                TEXT COLLATE "C" NOT NULL,
    trigger           TEXT NOT NULL CHECK (trigger IN ('http', 'cli', 'schedule')),
    forced            BOOLEAN NOT NULL DEFAULT false,
    outcome           TEXT NOT NULL CHECK (outcome IN ('posted', 'skipped')),
    reason            TEXT,                           -- why skipped
    waiting_review    BIGINT NOT NULL DEFAULT 0,      -- PRs short of approvals
    waiting_on_author BIGINT NOT NULL DEFAULT 0,      -- PRs with changes requested
    outbox_id         BIGINT                          -- the digest message, when posted
);
CREATE INDEX sweeps_last_posted ON sweeps (room, at) WHERE outcome = 'posted';

-- `/reviews snooze`: a person hides a PR until `until`, or until the PR changes.
CREATE TABLE snoozes (
    user_key       TEXT COLLATE "C" NOT NULL,         -- who snoozed (users.user_key)
    repository_key TEXT COLLATE "C" NOT NULL,
    number         BIGINT NOT NULL,
    until          TEXT COLLATE "C" NOT NULL,
    created_at     TEXT COLLATE "C" NOT NULL,
    source_commit  TEXT COLLATE "C",                  -- the PR's commit when snoozed
    reviewers      TEXT NOT NULL DEFAULT '[]',        -- JSON array of requested reviewers then
    approvers      TEXT NOT NULL DEFAULT '[]',        -- JSON array of who had approved then
    PRIMARY KEY (user_key, repository_key, number)
);
CREATE INDEX snoozes_pull_request ON snoozes (repository_key, number);

-- Reconciliation over Bitbucket's REST API.
CREATE TABLE reconciled_repositories (
    site           TEXT COLLATE "C" NOT NULL,         -- the site's configured url
    full_name      TEXT COLLATE "C" NOT NULL,         -- 'workspace/slug' or 'PROJECT/slug', any case
    first_pass_on  TEXT COLLATE "C" NOT NULL,
    last_pass_on   TEXT COLLATE "C" NOT NULL,
    last_requests  BIGINT NOT NULL,                   -- requests the last successful pass used
    PRIMARY KEY (site, full_name)
);
-- One row per repository whatever the case of its name (SQLite: COLLATE NOCASE on the key).
CREATE UNIQUE INDEX reconciled_repositories_nocase ON reconciled_repositories (site, lower(full_name));

CREATE TABLE reconciled_commits (
    repository_key TEXT COLLATE "C" NOT NULL,
    commit_hash    TEXT COLLATE "C" NOT NULL,         -- as the PR names it (Cloud: 12 hex digits)
    checked_on     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (repository_key, commit_hash)
);

-- Several replicas, one sender per room: the replica named in `holder` sends the room's messages
-- until `expires_at` (the database's clock); it renews the lease while it runs, and another replica
-- takes the room over once the lease has expired (its holder died or lost the database).
CREATE TABLE room_leases (
    room       TEXT COLLATE "C" PRIMARY KEY,
    holder     TEXT NOT NULL,                         -- the replica: host, process id, start time
    expires_at TIMESTAMPTZ NOT NULL
);

-- The operator views, with the same columns as on SQLite.
CREATE VIEW pull_request_builds AS
SELECT repo.full_name AS repository,
       pr.number,
       CASE
           WHEN count(cs.state) = 0 THEN NULL
           WHEN bool_or(cs.state = 'FAILED') THEN 'FAILED'
           WHEN bool_or(cs.state = 'INPROGRESS') THEN 'INPROGRESS'
           WHEN bool_or(cs.state = 'STOPPED') THEN 'STOPPED'
           ELSE 'SUCCESSFUL'
       END AS build_state,
       string_agg(cs.key || '=' || cs.state, ', ') AS builds,
       pr.repository_key
FROM pull_requests pr
JOIN repositories repo ON repo.repository_key = pr.repository_key
LEFT JOIN commit_statuses cs
       ON pr.source_commit IS NOT NULL
      AND cs.commit_hash >= lower(pr.source_commit)
      AND cs.commit_hash < lower(pr.source_commit) || 'g'
GROUP BY pr.repository_key, pr.number, repo.full_name;

CREATE VIEW pull_request_reviews AS
SELECT repo.full_name AS repository,
       pr.number,
       count(*) FILTER (WHERE r.state = 'approved') AS approvals,
       count(*) FILTER (WHERE r.state = 'changes_requested') AS changes_requested,
       string_agg(CASE WHEN r.state = 'approved' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ') AS approved_by,
       string_agg(CASE WHEN r.state = 'changes_requested' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ') AS changes_requested_by,
       string_agg(CASE WHEN r.role = 'REVIEWER' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ') AS reviewers,
       pr.repository_key
FROM pull_requests pr
JOIN repositories repo ON repo.repository_key = pr.repository_key
JOIN reviews r ON r.repository_key = pr.repository_key AND r.number = pr.number AND r.user_key <> pr.author
LEFT JOIN users u ON u.user_key = r.user_key
GROUP BY pr.repository_key, pr.number, repo.full_name;

-- What still needs review: open PRs with fewer approvals than required, oldest first.
CREATE VIEW pending_reviews AS
SELECT repo.full_name AS repository,
       pr.number,
       pr.title,
       coalesce(a.display_name, a.nickname, a.username, pr.author) AS author,
       coalesce(rv.approvals, 0) AS approvals,
       coalesce(repo.required_approvals,
                (SELECT CAST(value AS BIGINT) FROM settings WHERE name = 'required_approvals')) AS required_approvals,
       coalesce(rv.changes_requested, 0) AS changes_requested,
       b.build_state,
       CAST(trunc(extract(epoch FROM now() - CAST(pr.created_on AS timestamptz)) / 3600) AS BIGINT) AS age_hours,
       pr.url,
       pr.draft,
       rv.approved_by,
       rv.changes_requested_by,
       rv.reviewers,
       pr.created_on
FROM pull_requests pr
JOIN repositories repo ON repo.repository_key = pr.repository_key
LEFT JOIN users a ON a.user_key = pr.author
LEFT JOIN pull_request_reviews rv ON rv.repository_key = pr.repository_key AND rv.number = pr.number
LEFT JOIN pull_request_builds b ON b.repository_key = pr.repository_key AND b.number = pr.number
WHERE pr.state = 'OPEN'
  AND coalesce(rv.approvals, 0) < coalesce(repo.required_approvals,
        (SELECT CAST(value AS BIGINT) FROM settings WHERE name = 'required_approvals'))
ORDER BY pr.created_on, repo.full_name, pr.number;
