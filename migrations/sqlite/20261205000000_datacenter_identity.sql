-- Issue 21: one Bitbucket Data Center server, one identity.
--
-- A Data Center repository is keyed 'datacenter/{server}/{id}' (users 'datacenter/{server}/user/
-- {id}'), the server read from each delivery's links ('unknown' when there are none, as servers
-- before 5.14 send them) and, for reconciliation, from the configured site's URL. One server could
-- so be stored under several identities, each PR once per identity. From here on the identity is
-- decided from the configuration (a site's url and aliases; link-less deliveries belong to the one
-- Data Center site), and what is stored under two identities of one server is merged, at start
-- from the configuration, and here for what the data alone tells: a repository stored under
-- 'unknown' and under exactly one other server with the same id and the same name (any case) is
-- one repository (links appeared after an upgrade). The rows merge as the repository-rename
-- migration merged them: the newest snapshot of each PR wins with its reviews; builds, snoozes and
-- waiting messages move (one waiting message per room and PR, the other's events joining it).

-- The Data Center server a processed delivery was stored under (the status page lists each
-- identity with its last delivery); NULL for Cloud and for deliveries before this migration.
ALTER TABLE deliveries ADD COLUMN server TEXT;
CREATE INDEX deliveries_server ON deliveries (server, id) WHERE server IS NOT NULL;

-- The base URL Bitbucket's own links named in the last pass over a repository (a Data Center
-- site's REST answers); the status page warns when it is neither the site's url nor an alias.
ALTER TABLE reconciled_repositories ADD COLUMN base_url TEXT;

-- Repositories whose pull-request list answered 404: since when (the first 404 of the current
-- run, reset by any pass that goes through) and the last time. After at least a day of 404s their
-- open PRs are closed as deleted.
CREATE TABLE missing_repositories (
    site         TEXT NOT NULL,                 -- the site's configured url
    full_name    TEXT NOT NULL COLLATE NOCASE,  -- 'workspace/slug' or 'PROJECT/slug'
    since        TEXT NOT NULL,                 -- the first 404 of this run of them
    last_on      TEXT NOT NULL,                 -- the last 404
    closed       INTEGER NOT NULL DEFAULT 0,    -- open PRs closed as deleted because of it
    PRIMARY KEY (site, full_name)
) WITHOUT ROWID;

-- The pairs the data alone tells: 'datacenter/unknown/{id}' and the one other key ending in
-- '/{id}' of a repository with the same name.
CREATE TEMP TABLE identity_merges (
    from_key    TEXT PRIMARY KEY,
    into_key    TEXT NOT NULL,
    from_prefix TEXT NOT NULL,
    into_prefix TEXT NOT NULL
);
INSERT INTO identity_merges (from_key, into_key, from_prefix, into_prefix)
SELECT u.repository_key, min(x.repository_key), 'datacenter/unknown/',
       substr(min(x.repository_key), 1,
              length(min(x.repository_key)) - length(substr(u.repository_key, 20)))
  FROM repositories u
  JOIN repositories x
    ON lower(x.full_name) = lower(u.full_name)
   AND substr(x.repository_key, 1, 11) = 'datacenter/'
   AND substr(x.repository_key, 1, 19) <> 'datacenter/unknown/'
   AND substr(x.repository_key, length(x.repository_key) - length(substr(u.repository_key, 20)))
       = '/' || substr(u.repository_key, 20)
 WHERE substr(u.repository_key, 1, 19) = 'datacenter/unknown/'
 GROUP BY u.repository_key
HAVING count(*) = 1;

INSERT INTO users (user_key, uuid, account_id, nickname, username, display_name, email)
SELECT DISTINCT m.into_prefix || substr(u.user_key, length(m.from_prefix) + 1),
       u.uuid, u.account_id, u.nickname, u.username, u.display_name, u.email
  FROM identity_merges m
  JOIN users u ON substr(u.user_key, 1, length(m.from_prefix)) = m.from_prefix
 WHERE u.user_key IN (SELECT p.author FROM pull_requests p WHERE p.repository_key = m.from_key
                      UNION SELECT r.user_key FROM reviews r WHERE r.repository_key = m.from_key
                      UNION SELECT s.user_key FROM snoozes s WHERE s.repository_key = m.from_key)
ON CONFLICT (user_key) DO UPDATE SET
    uuid = coalesce(users.uuid, excluded.uuid),
    account_id = coalesce(users.account_id, excluded.account_id),
    nickname = coalesce(users.nickname, excluded.nickname),
    username = coalesce(users.username, excluded.username),
    display_name = coalesce(users.display_name, excluded.display_name),
    email = coalesce(users.email, excluded.email);

INSERT INTO repositories (repository_key, full_name, uuid, url, required_approvals, named_on)
SELECT m.into_key, r.full_name, r.uuid, r.url, r.required_approvals, r.named_on
  FROM identity_merges m JOIN repositories r ON r.repository_key = m.from_key
 WHERE true
ON CONFLICT (repository_key) DO UPDATE SET
    full_name = CASE WHEN coalesce(excluded.named_on, '') > coalesce(repositories.named_on, '')
                     THEN excluded.full_name ELSE repositories.full_name END,
    named_on = CASE WHEN coalesce(excluded.named_on, '') > coalesce(repositories.named_on, '')
                    THEN excluded.named_on ELSE repositories.named_on END,
    uuid = coalesce(repositories.uuid, excluded.uuid),
    url = coalesce(repositories.url, excluded.url);

DELETE FROM reviews WHERE (repository_key, number) IN (
    SELECT t.repository_key, t.number
      FROM identity_merges m
      JOIN pull_requests s ON s.repository_key = m.from_key
      JOIN pull_requests t ON t.repository_key = m.into_key AND t.number = s.number
     WHERE t.state <> 'DELETED' AND (s.state = 'DELETED' OR s.updated_on > t.updated_on));

INSERT INTO pull_requests (repository_key, number, title, author, source_branch, source_commit,
    destination_branch, state, draft, created_on, updated_on, last_activity_on, url, approvals,
    changes_requested)
SELECT m.into_key, p.number, p.title,
       CASE WHEN substr(p.author, 1, length(m.from_prefix)) = m.from_prefix
            THEN m.into_prefix || substr(p.author, length(m.from_prefix) + 1)
            ELSE p.author END,
       p.source_branch, p.source_commit, p.destination_branch, p.state, p.draft,
       p.created_on, p.updated_on, p.last_activity_on, p.url, p.approvals,
       p.changes_requested
  FROM identity_merges m JOIN pull_requests p ON p.repository_key = m.from_key
 WHERE true
ON CONFLICT (repository_key, number) DO UPDATE SET
    title = excluded.title, author = excluded.author,
    source_branch = excluded.source_branch, source_commit = excluded.source_commit,
    destination_branch = excluded.destination_branch, state = excluded.state,
    draft = excluded.draft, created_on = excluded.created_on,
    updated_on = excluded.updated_on,
    last_activity_on = CASE WHEN excluded.last_activity_on > pull_requests.last_activity_on
                            THEN excluded.last_activity_on
                            ELSE pull_requests.last_activity_on END,
    url = coalesce(excluded.url, pull_requests.url),
    approvals = excluded.approvals, changes_requested = excluded.changes_requested
WHERE pull_requests.state <> 'DELETED'
  AND (excluded.state = 'DELETED' OR excluded.updated_on > pull_requests.updated_on);

INSERT INTO reviews (repository_key, number, user_key, role, state, state_on, snapshot_on)
SELECT m.into_key, r.number,
       CASE WHEN substr(r.user_key, 1, length(m.from_prefix)) = m.from_prefix
            THEN m.into_prefix || substr(r.user_key, length(m.from_prefix) + 1)
            ELSE r.user_key END,
       r.role, r.state, r.state_on, r.snapshot_on
  FROM identity_merges m
  JOIN reviews r ON r.repository_key = m.from_key
  JOIN pull_requests s ON s.repository_key = r.repository_key AND s.number = r.number
  JOIN pull_requests t ON t.repository_key = m.into_key AND t.number = r.number
 WHERE t.updated_on = s.updated_on AND t.state = s.state
ON CONFLICT (repository_key, number, user_key) DO NOTHING;

UPDATE commit_statuses SET repository_key = (
    SELECT m.into_key FROM identity_merges m WHERE m.from_key = commit_statuses.repository_key)
 WHERE repository_key IN (SELECT from_key FROM identity_merges);

INSERT INTO reconciled_commits (repository_key, commit_hash, checked_on)
SELECT m.into_key, c.commit_hash, c.checked_on
  FROM identity_merges m JOIN reconciled_commits c ON c.repository_key = m.from_key
 WHERE true
ON CONFLICT (repository_key, commit_hash) DO UPDATE SET
    checked_on = CASE WHEN excluded.checked_on > reconciled_commits.checked_on
                      THEN excluded.checked_on ELSE reconciled_commits.checked_on END;

DELETE FROM reconciled_commits WHERE repository_key IN (SELECT from_key FROM identity_merges);

UPDATE outbox SET events = events || ',' || (
    SELECT s.events FROM identity_merges m JOIN outbox s ON s.repository_key = m.from_key
     WHERE m.into_key = outbox.repository_key AND s.room = outbox.room
       AND s.number = outbox.number AND s.state = 'pending' AND s.kind = 'pull_request')
 WHERE state = 'pending' AND kind = 'pull_request'
   AND EXISTS (SELECT 1 FROM identity_merges m JOIN outbox s ON s.repository_key = m.from_key
                WHERE m.into_key = outbox.repository_key AND s.room = outbox.room
                  AND s.number = outbox.number AND s.state = 'pending'
                  AND s.kind = 'pull_request');

DELETE FROM outbox
 WHERE state = 'pending' AND kind = 'pull_request'
   AND EXISTS (SELECT 1 FROM identity_merges m JOIN outbox t ON t.repository_key = m.into_key
                WHERE m.from_key = outbox.repository_key AND t.room = outbox.room
                  AND t.number = outbox.number AND t.state = 'pending'
                  AND t.kind = 'pull_request');

UPDATE outbox SET repository_key = (
    SELECT m.into_key FROM identity_merges m WHERE m.from_key = outbox.repository_key)
 WHERE repository_key IN (SELECT from_key FROM identity_merges);

INSERT INTO snoozes (user_key, repository_key, number, until, created_at, source_commit,
    reviewers, approvers)
SELECT CASE WHEN substr(s.user_key, 1, length(m.from_prefix)) = m.from_prefix
            THEN m.into_prefix || substr(s.user_key, length(m.from_prefix) + 1)
            ELSE s.user_key END,
       m.into_key, s.number, s.until, s.created_at, s.source_commit,
       replace(s.reviewers, '"' || m.from_prefix, '"' || m.into_prefix),
       replace(s.approvers, '"' || m.from_prefix, '"' || m.into_prefix)
  FROM identity_merges m JOIN snoozes s ON s.repository_key = m.from_key
 WHERE true
ON CONFLICT (user_key, repository_key, number) DO UPDATE SET
    until = CASE WHEN excluded.until > snoozes.until THEN excluded.until ELSE snoozes.until END;

DELETE FROM snoozes WHERE repository_key IN (SELECT from_key FROM identity_merges);

DELETE FROM pull_requests WHERE repository_key IN (SELECT from_key FROM identity_merges);

DELETE FROM repositories WHERE repository_key IN (SELECT from_key FROM identity_merges);

DELETE FROM users
 WHERE user_key IN (SELECT u.user_key FROM identity_merges m
                      JOIN users u ON substr(u.user_key, 1, length(m.from_prefix)) = m.from_prefix)
   AND NOT EXISTS (SELECT 1 FROM pull_requests p WHERE p.author = users.user_key)
   AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.user_key = users.user_key)
   AND NOT EXISTS (SELECT 1 FROM snoozes s WHERE s.user_key = users.user_key);

DROP TABLE temp.identity_merges;
