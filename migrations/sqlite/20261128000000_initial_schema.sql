-- pr-reminder's picture of Bitbucket pull requests.
-- Instants are UTC text with six fractional digits ('2023-05-16T10:33:04.281505Z'): text order is
-- time order, and julianday() reads them.

-- Service-wide settings the views need (written at every start from the configuration).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO settings (name, value) VALUES ('required_approvals', '2');

CREATE TABLE repositories (
    full_name          TEXT PRIMARY KEY,            -- 'workspace/slug'
    uuid               TEXT,
    url                TEXT,
    required_approvals INTEGER                      -- NULL: settings.required_approvals
) WITHOUT ROWID;

-- Bitbucket accounts. user_key is the uuid, or account_id / username for payloads without one.
CREATE TABLE users (
    user_key     TEXT PRIMARY KEY,
    uuid         TEXT,
    account_id   TEXT,
    nickname     TEXT,
    username     TEXT,                               -- legacy payloads only
    display_name TEXT
) WITHOUT ROWID;

CREATE TABLE pull_requests (
    repository         TEXT    NOT NULL REFERENCES repositories (full_name),
    number             INTEGER NOT NULL,
    title              TEXT    NOT NULL,
    author             TEXT    NOT NULL REFERENCES users (user_key),
    source_branch      TEXT,
    source_commit      TEXT,                         -- as Bitbucket gives it (Cloud: 12 hex digits)
    destination_branch TEXT,
    state              TEXT    NOT NULL CHECK (state IN ('OPEN', 'MERGED', 'DECLINED', 'SUPERSEDED')),
    draft              INTEGER NOT NULL DEFAULT 0 CHECK (draft IN (0, 1)),
    created_on         TEXT    NOT NULL,
    updated_on         TEXT    NOT NULL,             -- of the newest event applied; older ones lose
    last_activity_on   TEXT    NOT NULL,
    url                TEXT,
    PRIMARY KEY (repository, number)
) WITHOUT ROWID;
CREATE INDEX pull_requests_open ON pull_requests (state, created_on);

-- Everyone attached to a PR: requested reviewers and other participants, with their verdict.
CREATE TABLE reviews (
    repository  TEXT    NOT NULL,
    number      INTEGER NOT NULL,
    user_key    TEXT    NOT NULL REFERENCES users (user_key),
    role        TEXT    NOT NULL CHECK (role IN ('REVIEWER', 'PARTICIPANT')),
    state       TEXT    NOT NULL CHECK (state IN ('approved', 'changes_requested', 'none')),
    state_on    TEXT,                                -- Bitbucket's participated_on
    snapshot_on TEXT    NOT NULL,                    -- updated_on of the PR event that wrote the row
    PRIMARY KEY (repository, number, user_key),
    FOREIGN KEY (repository, number) REFERENCES pull_requests (repository, number) ON DELETE CASCADE
) WITHOUT ROWID;

-- Build results per commit (repo:commit_status_*). A PR's build is that of its source commit.
CREATE TABLE commit_statuses (
    commit_hash TEXT NOT NULL,                       -- full 40 hex digits, lower case
    key         TEXT NOT NULL,                       -- the build's key (one row per CI job)
    repository  TEXT NOT NULL REFERENCES repositories (full_name),
    state       TEXT NOT NULL CHECK (state IN ('SUCCESSFUL', 'FAILED', 'INPROGRESS', 'STOPPED')),
    name        TEXT,
    url         TEXT,
    updated_on  TEXT NOT NULL,
    PRIMARY KEY (commit_hash, key)
) WITHOUT ROWID;

-- Every delivery that reached /webhooks/bitbucket, including refused ones (their body is not kept).
CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY,
    request_id  TEXT,                                -- X-Request-UUID / X-Request-Id
    event_key   TEXT,                                -- X-Event-Key
    received_at TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('processed', 'ignored', 'rejected')),
    reason      TEXT,                                -- why ignored or rejected
    repository  TEXT,
    pr_number   INTEGER,
    attempt     INTEGER                              -- X-Attempt-Number
);
-- A request id is accepted once; a rejected attempt may be retried and accepted later.
CREATE UNIQUE INDEX deliveries_accepted_request_id ON deliveries (request_id) WHERE outcome <> 'rejected';

-- The combined build state of each PR's source commit: any failure wins, then running, then stopped.
-- Cloud PR payloads carry 12-digit hashes and statuses full ones, hence the prefix range.
CREATE VIEW pull_request_builds AS
SELECT pr.repository,
       pr.number,
       CASE
           WHEN count(cs.state) = 0 THEN NULL
           WHEN sum(cs.state = 'FAILED') > 0 THEN 'FAILED'
           WHEN sum(cs.state = 'INPROGRESS') > 0 THEN 'INPROGRESS'
           WHEN sum(cs.state = 'STOPPED') > 0 THEN 'STOPPED'
           ELSE 'SUCCESSFUL'
       END AS build_state,
       group_concat(cs.key || '=' || cs.state, ', ') AS builds
FROM pull_requests pr
LEFT JOIN commit_statuses cs
       ON pr.source_commit IS NOT NULL
      AND cs.commit_hash >= lower(pr.source_commit)
      AND cs.commit_hash < lower(pr.source_commit) || 'g'
GROUP BY pr.repository, pr.number;

-- Who approved / asked for changes, per PR. The author's own verdict never counts.
CREATE VIEW pull_request_reviews AS
SELECT pr.repository,
       pr.number,
       count(*) FILTER (WHERE r.state = 'approved') AS approvals,
       count(*) FILTER (WHERE r.state = 'changes_requested') AS changes_requested,
       group_concat(CASE WHEN r.state = 'approved' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ') AS approved_by,
       group_concat(CASE WHEN r.state = 'changes_requested' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ') AS changes_requested_by,
       group_concat(CASE WHEN r.role = 'REVIEWER' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ') AS reviewers
FROM pull_requests pr
JOIN reviews r ON r.repository = pr.repository AND r.number = pr.number AND r.user_key <> pr.author
LEFT JOIN users u ON u.user_key = r.user_key
GROUP BY pr.repository, pr.number;

-- What still needs review: open PRs with fewer approvals than required, oldest first.
CREATE VIEW pending_reviews AS
SELECT pr.repository,
       pr.number,
       pr.title,
       coalesce(a.display_name, a.nickname, a.username, pr.author) AS author,
       coalesce(rv.approvals, 0) AS approvals,
       coalesce(repo.required_approvals,
                (SELECT CAST(value AS INTEGER) FROM settings WHERE name = 'required_approvals')) AS required_approvals,
       coalesce(rv.changes_requested, 0) AS changes_requested,
       b.build_state,
       CAST((julianday('now') - julianday(pr.created_on)) * 24 AS INTEGER) AS age_hours,
       pr.url,
       pr.draft,
       rv.approved_by,
       rv.changes_requested_by,
       rv.reviewers,
       pr.created_on
FROM pull_requests pr
JOIN repositories repo ON repo.full_name = pr.repository
LEFT JOIN users a ON a.user_key = pr.author
LEFT JOIN pull_request_reviews rv ON rv.repository = pr.repository AND rv.number = pr.number
LEFT JOIN pull_request_builds b ON b.repository = pr.repository AND b.number = pr.number
WHERE pr.state = 'OPEN'
  AND coalesce(rv.approvals, 0) < coalesce(repo.required_approvals,
        (SELECT CAST(value AS INTEGER) FROM settings WHERE name = 'required_approvals'))
ORDER BY pr.created_on, pr.repository, pr.number;
