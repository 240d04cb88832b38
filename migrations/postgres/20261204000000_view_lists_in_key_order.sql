-- The lists in the operator views (`approved_by`, `changes_requested_by`, `reviewers`, `builds`)
-- in the order SQLite gives them: SQLite reads a PR's reviews through their primary key, so its
-- group_concat lists people by user_key, and builds by (commit_hash, key); PostgreSQL's
-- string_agg followed whatever order its plan read the rows in ("Carol Reviewer, Bob Reviewer"
-- where sqlite3 shows "Bob Reviewer, Carol Reviewer"). Same columns, same names: replaced in
-- place, pending_reviews unchanged.

CREATE OR REPLACE VIEW pull_request_builds AS
SELECT repo.full_name AS repository,
       pr.number,
       CASE
           WHEN count(cs.state) = 0 THEN NULL
           WHEN bool_or(cs.state = 'FAILED') THEN 'FAILED'
           WHEN bool_or(cs.state = 'INPROGRESS') THEN 'INPROGRESS'
           WHEN bool_or(cs.state = 'STOPPED') THEN 'STOPPED'
           ELSE 'SUCCESSFUL'
       END AS build_state,
       string_agg(cs.key || '=' || cs.state, ', ' ORDER BY cs.commit_hash, cs.key) AS builds,
       pr.repository_key
FROM pull_requests pr
JOIN repositories repo ON repo.repository_key = pr.repository_key
LEFT JOIN commit_statuses cs
       ON pr.source_commit IS NOT NULL
      AND cs.commit_hash >= lower(pr.source_commit)
      AND cs.commit_hash < lower(pr.source_commit) || 'g'
GROUP BY pr.repository_key, pr.number, repo.full_name;

CREATE OR REPLACE VIEW pull_request_reviews AS
SELECT repo.full_name AS repository,
       pr.number,
       count(*) FILTER (WHERE r.state = 'approved') AS approvals,
       count(*) FILTER (WHERE r.state = 'changes_requested') AS changes_requested,
       string_agg(CASE WHEN r.state = 'approved' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ' ORDER BY r.user_key) AS approved_by,
       string_agg(CASE WHEN r.state = 'changes_requested' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ' ORDER BY r.user_key) AS changes_requested_by,
       string_agg(CASE WHEN r.role = 'REVIEWER' THEN coalesce(u.display_name, u.nickname, u.username, r.user_key) END, ', ' ORDER BY r.user_key) AS reviewers,
       pr.repository_key
FROM pull_requests pr
JOIN repositories repo ON repo.repository_key = pr.repository_key
JOIN reviews r ON r.repository_key = pr.repository_key AND r.number = pr.number AND r.user_key <> pr.author
LEFT JOIN users u ON u.user_key = r.user_key
GROUP BY pr.repository_key, pr.number, repo.full_name;
