-- Issue 23: default reviewers. Where a site is configured for reconciliation, each pass reads
-- who Bitbucket would add as default reviewers (Cloud's effective-default-reviewers of the
-- repository, Data Center's default-reviewer conditions resolved for the PR's pair of refs) and
-- keeps them per open PR. When a PR has fewer requested reviewers than the approvals it needs,
-- its default reviewers owe a review too (src/domain/turn.rs `TurnFacts::owed`), and the view
-- `open_pull_requests` names them in `waiting_on`.
CREATE TABLE default_reviewers (
    repository_key TEXT    NOT NULL,
    number         INTEGER NOT NULL,
    user_key       TEXT    NOT NULL REFERENCES users (user_key),
    position       INTEGER NOT NULL,  -- the order Bitbucket listed them in
    checked_on     TEXT    NOT NULL,  -- when the pass read them
    PRIMARY KEY (repository_key, number, user_key),
    FOREIGN KEY (repository_key, number) REFERENCES pull_requests (repository_key, number)
        ON DELETE CASCADE
);

-- The view again, with the default reviewers owed (the rest unchanged: see
-- 20261207100000_turns.sql for the rules).
DROP VIEW open_pull_requests;
CREATE VIEW open_pull_requests AS
WITH prs AS (
    SELECT p.repository_key, p.number, p.title, p.author, p.created_on, p.updated_on, p.draft,
           p.open_tasks, lower(p.source_commit) AS source_commit, p.pushed_on,
           repo.full_name, repo.approvals_after_last_push AS after_push,
           coalesce(repo.required_approvals,
                    (SELECT CAST(value AS INTEGER) FROM settings
                      WHERE name = 'required_approvals')) AS required_approvals
      FROM pull_requests p
      JOIN repositories repo ON repo.repository_key = p.repository_key
     WHERE p.state = 'OPEN'
),
verdicts AS (
    SELECT r.repository_key, r.number, r.user_key, r.role, r.state, r.state_on,
           coalesce(u.display_name, u.nickname, u.username, r.user_key) AS name,
           CASE WHEN r.reviewed_commit IS NOT NULL AND p.source_commit IS NOT NULL
                     THEN r.reviewed_commit = p.source_commit
                WHEN r.state_on IS NOT NULL AND p.pushed_on IS NOT NULL
                     THEN r.state_on >= p.pushed_on
                ELSE 1 END AS current,
           p.after_push
      FROM prs p
      JOIN reviews r ON r.repository_key = p.repository_key AND r.number = p.number
                    AND r.user_key <> p.author
      LEFT JOIN users u ON u.user_key = r.user_key
),
marked AS (
    SELECT v.*,
           (v.state = 'approved' AND (NOT v.after_push OR v.current)) AS counts,
           (v.state = 'changes_requested' AND v.current) AS blocks
      FROM verdicts v
),
people AS (
    SELECT repository_key, number,
           sum(counts) AS approvals,
           sum(blocks) AS blocking,
           min(CASE WHEN blocks THEN state_on END) AS blocked_on,
           max(CASE WHEN counts THEN state_on END) AS approved_on
      FROM marked
     GROUP BY repository_key, number
),
defaults AS (
    SELECT d.repository_key, d.number,
           coalesce(u.display_name, u.nickname, u.username, d.user_key) AS name
      FROM default_reviewers d
      JOIN prs p ON p.repository_key = d.repository_key AND p.number = d.number
      LEFT JOIN users u ON u.user_key = d.user_key
     WHERE d.user_key <> p.author
       AND (SELECT count(*) FROM reviews r
             WHERE r.repository_key = d.repository_key AND r.number = d.number
               AND r.role = 'REVIEWER' AND r.user_key <> p.author) < p.required_approvals
       AND NOT EXISTS (SELECT 1 FROM marked m
                        WHERE m.repository_key = d.repository_key AND m.number = d.number
                          AND m.user_key = d.user_key
                          AND (m.role = 'REVIEWER' OR m.counts OR m.blocks))
),
-- The owed reviewers' names in name order: requested ones, then default ones. (group_concat's
-- own ORDER BY needs SQLite 3.44; an operator's older sqlite3 could then not read this schema
-- at all, so the rows come ordered.)
owed AS (
    SELECT repository_key, number, group_concat(name, ', ') AS owed
      FROM (SELECT repository_key, number, name FROM
              (SELECT repository_key, number, name FROM marked
                WHERE role = 'REVIEWER' AND NOT counts AND NOT blocks
               UNION ALL
               SELECT repository_key, number, name FROM defaults)
             ORDER BY repository_key, number, lower(name), name)
     GROUP BY repository_key, number
),
builds AS (
    SELECT p.repository_key, p.number,
           CASE WHEN count(cs.state) = 0 THEN NULL
                WHEN sum(cs.state = 'FAILED') > 0 THEN 'FAILED'
                WHEN sum(cs.state = 'INPROGRESS') > 0 THEN 'INPROGRESS'
                WHEN sum(cs.state = 'STOPPED') > 0 THEN 'STOPPED'
                ELSE 'SUCCESSFUL' END AS build_state,
           max(cs.updated_on) AS build_on
      FROM prs p
      LEFT JOIN commit_statuses cs
             ON p.source_commit IS NOT NULL
            AND cs.commit_hash >= p.source_commit
            AND cs.commit_hash < p.source_commit || 'g'
     GROUP BY p.repository_key, p.number
),
facts AS (
    SELECT p.*, coalesce(a.display_name, a.nickname, a.username, p.author) AS author_name,
           coalesce(pe.approvals, 0) AS approvals, coalesce(pe.blocking, 0) AS blocking,
           pe.blocked_on, pe.approved_on, o.owed, b.build_state, b.build_on,
           p.draft
           OR coalesce(pe.blocking, 0) > 0
           OR coalesce(b.build_state IN ('FAILED', 'STOPPED'), 0)
           OR (coalesce(pe.approvals, 0) >= p.required_approvals
               AND coalesce(p.open_tasks, 0) > 0) AS authors
      FROM prs p
      LEFT JOIN users a ON a.user_key = p.author
      LEFT JOIN people pe ON pe.repository_key = p.repository_key AND pe.number = p.number
      LEFT JOIN owed o ON o.repository_key = p.repository_key AND o.number = p.number
      LEFT JOIN builds b ON b.repository_key = p.repository_key AND b.number = p.number
)
SELECT full_name AS repository,
       number,
       title,
       author_name AS author,
       CASE WHEN authors THEN 'author'
            WHEN approvals < required_approvals THEN 'reviewers'
            ELSE 'merge' END AS turn,
       CASE WHEN NOT authors AND approvals < required_approvals THEN owed
            ELSE author_name END AS waiting_on,
       approvals,
       required_approvals,
       build_state,
       open_tasks,
       CAST((julianday('now') - julianday(created_on)) * 24 AS INTEGER) AS age_hours,
       CASE WHEN authors THEN
                max(created_on,
                    min(CASE WHEN draft THEN updated_on ELSE '9' END,
                        CASE WHEN blocking > 0 THEN coalesce(blocked_on, updated_on) ELSE '9' END,
                        CASE WHEN build_state IN ('FAILED', 'STOPPED')
                             THEN coalesce(build_on, updated_on) ELSE '9' END,
                        CASE WHEN approvals >= required_approvals AND coalesce(open_tasks, 0) > 0
                             THEN updated_on ELSE '9' END))
            WHEN approvals < required_approvals THEN
                max(created_on, coalesce(pushed_on, created_on), coalesce(build_on, created_on))
            ELSE
                max(created_on, coalesce(pushed_on, created_on), coalesce(build_on, created_on),
                    coalesce(approved_on, created_on))
       END AS turn_since
  FROM facts
 ORDER BY created_on, full_name, number;

-- When a pass last read every default reviewer of a repository (they are read again at most
-- hourly, and at once for a PR new or changed in a pass).
ALTER TABLE reconciled_repositories ADD COLUMN default_reviewers_on TEXT;
-- When a pass last read a PR's default reviewers (NULL: never, or since it was closed): a PR
-- short of reviewers that was never read (it came by webhook) is read at the next pass.
ALTER TABLE pull_requests ADD COLUMN default_reviewers_on TEXT;
