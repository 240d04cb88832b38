-- Repositories are identified by what Bitbucket never changes, and the name is an attribute.
--
-- Before this migration every table named a repository by its `workspace/slug`. A rename gave an
-- open PR a second row under the new name while the old row stayed OPEN forever. From here on:
--   repository_key = 'cloud/{uuid}' for Bitbucket Cloud (the uuid with its braces), or
--                    'cloud/name/{full_name}' for the rare payload without a uuid (templates),
--                    'datacenter/{host[:port]}/{id}' for Bitbucket Data Center ('unknown' for a
--                    server whose payloads carry no link);
--   repositories.full_name is the current name, and the views show it as `repository`.
-- Rows that a rename had split are merged: the newest snapshot of each PR wins.

-- Foreign keys are checked at COMMIT, once every table has been rebuilt.
PRAGMA defer_foreign_keys = ON;

DROP VIEW pending_reviews;
DROP VIEW pull_request_reviews;
DROP VIEW pull_request_builds;

-- Old name -> key, and which old name is current per key: the one whose PRs were updated last.
CREATE TEMP TABLE repository_keys AS
SELECT r.full_name,
       CASE WHEN r.uuid IS NOT NULL AND trim(r.uuid) <> '' THEN 'cloud/' || trim(r.uuid)
            ELSE 'cloud/name/' || r.full_name END AS repository_key,
       (SELECT max(p.updated_on) FROM pull_requests p WHERE p.repository = r.full_name) AS named_on
FROM repositories r;

CREATE TABLE repositories_new (
    repository_key     TEXT PRIMARY KEY,              -- see the top of this file
    full_name          TEXT NOT NULL,                 -- current 'workspace/slug'
    uuid               TEXT,
    url                TEXT,
    required_approvals INTEGER,                       -- NULL: settings.required_approvals
    named_on           TEXT                           -- Bitbucket's time of the change that showed this name
) WITHOUT ROWID;
INSERT INTO repositories_new (repository_key, full_name, uuid, url, required_approvals, named_on)
SELECT k.repository_key, r.full_name, r.uuid, r.url, r.required_approvals, k.named_on
FROM repositories r JOIN repository_keys k ON k.full_name = r.full_name
WHERE true
ORDER BY k.named_on DESC NULLS LAST
ON CONFLICT (repository_key) DO NOTHING;

CREATE TABLE pull_requests_new (
    repository_key     TEXT    NOT NULL REFERENCES repositories_new (repository_key),
    number             INTEGER NOT NULL,
    title              TEXT    NOT NULL,
    author             TEXT    NOT NULL REFERENCES users (user_key),
    source_branch      TEXT,
    source_commit      TEXT,                          -- as Bitbucket gives it (Cloud: 12 hex digits)
    destination_branch TEXT,
    state              TEXT    NOT NULL
                       CHECK (state IN ('OPEN', 'MERGED', 'DECLINED', 'SUPERSEDED', 'DELETED')),
    draft              INTEGER NOT NULL DEFAULT 0 CHECK (draft IN (0, 1)),
    created_on         TEXT    NOT NULL,
    updated_on         TEXT    NOT NULL,              -- of the newest snapshot applied; older ones lose
                                                      -- (Data Center: the event's date, since a
                                                      -- verdict does not move updatedDate)
    last_activity_on   TEXT    NOT NULL,
    url                TEXT,
    approvals          INTEGER NOT NULL DEFAULT 0,    -- verdicts, the author's own never counted
    changes_requested  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (repository_key, number)
) WITHOUT ROWID;
INSERT INTO pull_requests_new
SELECT k.repository_key, p.number, p.title, p.author, p.source_branch, p.source_commit,
       p.destination_branch, p.state, p.draft, p.created_on, p.updated_on, p.last_activity_on,
       p.url, p.approvals, p.changes_requested
FROM pull_requests p JOIN repository_keys k ON k.full_name = p.repository
WHERE true
ORDER BY p.updated_on DESC
ON CONFLICT (repository_key, number) DO NOTHING;

CREATE TABLE reviews_new (
    repository_key TEXT    NOT NULL,
    number         INTEGER NOT NULL,
    user_key       TEXT    NOT NULL REFERENCES users (user_key),
    role           TEXT    NOT NULL CHECK (role IN ('REVIEWER', 'PARTICIPANT')),
    state          TEXT    NOT NULL CHECK (state IN ('approved', 'changes_requested', 'none')),
    state_on       TEXT,                              -- Bitbucket's participated_on
    snapshot_on    TEXT    NOT NULL,                  -- updated_on of the PR snapshot that wrote the row
    PRIMARY KEY (repository_key, number, user_key),
    FOREIGN KEY (repository_key, number) REFERENCES pull_requests_new (repository_key, number) ON DELETE CASCADE
) WITHOUT ROWID;
-- Only the reviews of the PR row that was kept (the one written by the newest snapshot).
INSERT INTO reviews_new
SELECT k.repository_key, r.number, r.user_key, r.role, r.state, r.state_on, r.snapshot_on
FROM reviews r
JOIN repository_keys k ON k.full_name = r.repository
JOIN pull_requests_new p ON p.repository_key = k.repository_key AND p.number = r.number
JOIN pull_requests old ON old.repository = r.repository AND old.number = r.number
WHERE old.updated_on = p.updated_on
ON CONFLICT (repository_key, number, user_key) DO NOTHING;

CREATE TABLE commit_statuses_new (
    commit_hash    TEXT NOT NULL,                     -- full 40 hex digits, lower case
    key            TEXT NOT NULL,                     -- the build's key (one row per CI job)
    repository_key TEXT NOT NULL REFERENCES repositories_new (repository_key),
    state          TEXT NOT NULL CHECK (state IN ('SUCCESSFUL', 'FAILED', 'INPROGRESS', 'STOPPED')),
    name           TEXT,
    url            TEXT,
    updated_on     TEXT NOT NULL,
    PRIMARY KEY (commit_hash, key)
) WITHOUT ROWID;
INSERT INTO commit_statuses_new
SELECT c.commit_hash, c.key, k.repository_key, c.state, c.name, c.url, c.updated_on
FROM commit_statuses c JOIN repository_keys k ON k.full_name = c.repository;

-- The outbox says what a row is (`kind`) instead of a digest's empty repository and number 0.
CREATE TABLE outbox_new (
    id             INTEGER PRIMARY KEY,
    room           TEXT    NOT NULL,                  -- a configured room name
    kind           TEXT    NOT NULL DEFAULT 'pull_request' CHECK (kind IN ('pull_request', 'digest')),
    repository_key TEXT,                              -- pull_request rows only
    number         INTEGER,                           -- pull_request rows only
    events         TEXT    NOT NULL,                  -- comma-separated: opened, approvals, ... (digest: 'digest')
    state          TEXT    NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'retrying', 'sending', 'sent', 'failed')),
    created_at     TEXT    NOT NULL,
    not_before     TEXT    NOT NULL,                  -- end of the coalescing window, or next retry
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    sent_at        TEXT,
    message        TEXT,                              -- the text that was sent
    payload        TEXT,                              -- digests: the message rendered when the sweep ran
    CHECK ((kind = 'digest') = (repository_key IS NULL AND number IS NULL))
);
INSERT INTO outbox_new (id, room, kind, repository_key, number, events, state, created_at, not_before,
                        attempts, last_error, sent_at, message, payload)
SELECT o.id, o.room,
       CASE WHEN o.repository = '' THEN 'digest' ELSE 'pull_request' END,
       CASE WHEN o.repository = '' THEN NULL
            ELSE coalesce(k.repository_key, 'cloud/name/' || o.repository) END,
       CASE WHEN o.repository = '' THEN NULL ELSE o.number END,
       o.events, o.state, o.created_at, o.not_before, o.attempts, o.last_error, o.sent_at, o.message,
       o.payload
FROM outbox o LEFT JOIN repository_keys k ON k.full_name = o.repository
-- Two waiting rows of one PR (split by a rename) cannot both stay 'pending': keep the older.
WHERE NOT (o.state = 'pending' AND o.repository <> '' AND EXISTS (
      SELECT 1 FROM outbox o2 JOIN repository_keys k2 ON k2.full_name = o2.repository
       WHERE o2.state = 'pending' AND o2.room = o.room AND o2.number = o.number
         AND k2.repository_key = k.repository_key AND o2.id < o.id));

CREATE TABLE snoozes_new (
    user_key       TEXT    NOT NULL,                  -- who snoozed (users.user_key)
    repository_key TEXT    NOT NULL,
    number         INTEGER NOT NULL,
    until          TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    source_commit  TEXT,                              -- the PR's commit when snoozed
    reviewers      TEXT    NOT NULL DEFAULT '[]',     -- JSON array of requested reviewers then
    approvers      TEXT    NOT NULL DEFAULT '[]',     -- JSON array of who had approved then
    PRIMARY KEY (user_key, repository_key, number)
) WITHOUT ROWID;
INSERT INTO snoozes_new
SELECT s.user_key, k.repository_key, s.number, s.until, s.created_at, s.source_commit, s.reviewers,
       s.approvers
FROM snoozes s JOIN repository_keys k ON k.full_name = s.repository
WHERE true
ORDER BY s.until DESC
ON CONFLICT (user_key, repository_key, number) DO NOTHING;

-- Data Center users carry an e-mail address, which [[users]] mappings may name.
ALTER TABLE users ADD COLUMN email TEXT;

-- Children first, so that no cascade reaches the rows just copied.
DROP TABLE snoozes;
DROP TABLE outbox;
DROP TABLE reviews;
DROP TABLE commit_statuses;
DROP TABLE pull_requests;
DROP TABLE repositories;
DROP TABLE repository_keys;

-- Renaming rewrites the references of the other new tables to the final names.
ALTER TABLE repositories_new RENAME TO repositories;
ALTER TABLE pull_requests_new RENAME TO pull_requests;
ALTER TABLE reviews_new RENAME TO reviews;
ALTER TABLE commit_statuses_new RENAME TO commit_statuses;
ALTER TABLE outbox_new RENAME TO outbox;
ALTER TABLE snoozes_new RENAME TO snoozes;

CREATE INDEX repositories_full_name ON repositories (full_name COLLATE NOCASE);
CREATE INDEX pull_requests_open ON pull_requests (state, created_on);
CREATE INDEX pull_requests_source_commit ON pull_requests (source_commit);
CREATE UNIQUE INDEX outbox_pending_per_pr ON outbox (room, repository_key, number)
    WHERE state = 'pending' AND kind = 'pull_request';
CREATE UNIQUE INDEX outbox_pending_digest ON outbox (room) WHERE state = 'pending' AND kind = 'digest';
CREATE INDEX outbox_queue ON outbox (room, state, id);
CREATE INDEX snoozes_pull_request ON snoozes (repository_key, number);

-- The operator views, with the same columns as before: `repository` is the current name.
CREATE VIEW pull_request_builds AS
SELECT repo.full_name AS repository,
       pr.number,
       CASE
           WHEN count(cs.state) = 0 THEN NULL
           WHEN sum(cs.state = 'FAILED') > 0 THEN 'FAILED'
           WHEN sum(cs.state = 'INPROGRESS') > 0 THEN 'INPROGRESS'
           WHEN sum(cs.state = 'STOPPED') > 0 THEN 'STOPPED'
           ELSE 'SUCCESSFUL'
       END AS build_state,
       group_concat(cs.key || '=' || cs.state, ', ') AS builds,
       pr.repository_key
FROM pull_requests pr
JOIN repositories repo ON repo.repository_key = pr.repository_key
LEFT JOIN commit_statuses cs
       ON pr.source_commit IS NOT NULL
      AND cs.commit_hash >= lower(pr.source_commit)
      AND cs.commit_hash < lower(pr.source_commit) || 'g'
GROUP BY pr.repository_key, pr.number;

CREATE VIEW pull_request_reviews AS
SELECT repo.full_name AS repository,
       pr.number,
       count(*) FILTER (WHERE r.state = 'approved') AS approvals,
       count(*) FILTER (WHERE r.state = 'changes_requested') AS changes_requested,
       group_concat(CASE WHEN r.state = 'approved' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ') AS approved_by,
       group_concat(CASE WHEN r.state = 'changes_requested' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ') AS changes_requested_by,
       group_concat(CASE WHEN r.role = 'REVIEWER' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ') AS reviewers,
       pr.repository_key
FROM pull_requests pr
JOIN repositories repo ON repo.repository_key = pr.repository_key
JOIN reviews r ON r.repository_key = pr.repository_key AND r.number = pr.number AND r.user_key <> pr.author
LEFT JOIN users u ON u.user_key = r.user_key
GROUP BY pr.repository_key, pr.number;

CREATE VIEW pending_reviews AS
SELECT repo.full_name AS repository,
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
JOIN repositories repo ON repo.repository_key = pr.repository_key
LEFT JOIN users a ON a.user_key = pr.author
LEFT JOIN pull_request_reviews rv ON rv.repository_key = pr.repository_key AND rv.number = pr.number
LEFT JOIN pull_request_builds b ON b.repository_key = pr.repository_key AND b.number = pr.number
WHERE pr.state = 'OPEN'
  AND coalesce(rv.approvals, 0) < coalesce(repo.required_approvals,
        (SELECT CAST(value AS INTEGER) FROM settings WHERE name = 'required_approvals'))
ORDER BY pr.created_on, repo.full_name, pr.number;
