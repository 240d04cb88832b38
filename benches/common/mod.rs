//! The data both benchmarks generate, straight into SQLite with set-based SQL (a few seconds for
//! 100,000 PRs): repositories in workspaces `w{n}` (room n takes workspace n), 500 users, open
//! PRs created over the last 30 days, two reviewers each, a build on every third PR's commit.

use sqlx::SqlitePool;

/// How much to generate, and two rules as SQL expressions.
pub struct Shape {
    /// Open PRs in all.
    pub prs: i64,
    /// Repositories, PRs spread evenly over them.
    pub repos: i64,
    /// Rooms (workspaces).
    pub rooms: i64,
    /// Whether PR `i` (`?2` repositories) is a draft, e.g. `0` or `(i / ?2) % 10 = 0`.
    pub draft: &'static str,
    /// A reviewer's state from `p.number` and `k.k` (1 or 2), a SQL `CASE`.
    pub review_state: &'static str,
}

/// Fills a migrated database with `shape`, then `ANALYZE`.
pub async fn seed(pool: &SqlitePool, shape: &Shape) -> anyhow::Result<()> {
    // Workspace w{n} holds the repositories of room n.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO repositories (repository_key, full_name)
         SELECT printf('cloud/{repo-%d}', i), printf('w%d/repo-%d', i % ?2, i) FROM n",
    )
    .bind(shape.repos)
    .bind(shape.rooms)
    .execute(pool)
    .await?;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < 500)
         INSERT INTO users (user_key, display_name) SELECT printf('{user-%d}', i), printf('User %d', i) FROM n",
    )
    .execute(pool)
    .await?;
    // Created over the last 30 days.
    let prs = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO pull_requests (repository_key, number, title, author, source_branch, source_commit,
             destination_branch, state, draft, created_on, updated_on, last_activity_on, url)
         SELECT printf('cloud/{repo-%d}', i % ?2), i / ?2 + 1,
                printf('Change number %d: make the thing do the other thing, carefully', i),
                printf('{user-%d}', i % 500), 'feature/x', printf('%012x', i), 'main', 'OPEN',
                {draft},
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d minutes', (i * 7) % 43200)),
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                printf('https://bitbucket.org/w%d/repo-%d/pull-requests/%d', (i % ?2) % ?3, i % ?2, i / ?2 + 1)
           FROM n";
    sqlx::query(&prs.replace("{draft}", shape.draft))
        .bind(shape.prs)
        .bind(shape.repos)
        .bind(shape.rooms)
        .execute(pool)
        .await?;
    // Two reviewers per PR, none of them the author.
    let reviews = "INSERT INTO reviews (repository_key, number, user_key, role, state, state_on, snapshot_on)
         SELECT p.repository_key, p.number, printf('{user-%d}', (p.number * 7 + k.k) % 500), 'REVIEWER',
                {review_state},
                p.updated_on, p.updated_on
           FROM pull_requests p, (SELECT 1 AS k UNION ALL SELECT 2) k
          WHERE printf('{user-%d}', (p.number * 7 + k.k) % 500) <> p.author";
    sqlx::query(&reviews.replace("{review_state}", shape.review_state))
        .execute(pool)
        .await?;
    sqlx::query(
        "UPDATE pull_requests SET
            approvals = (SELECT count(*) FROM reviews r
                           WHERE r.repository_key = pull_requests.repository_key
                           AND r.number = pull_requests.number AND r.state = 'approved'),
            changes_requested = (SELECT count(*) FROM reviews r
                           WHERE r.repository_key = pull_requests.repository_key
                           AND r.number = pull_requests.number AND r.state = 'changes_requested')",
    )
    .execute(pool)
    .await?;
    // A build on every third PR's source commit, one in four of them failing.
    sqlx::query(
        "INSERT INTO commit_statuses (commit_hash, key, repository_key, state, name, url, updated_on)
         SELECT source_commit || '0000000000000000000000000000', 'ci', repository_key,
                CASE WHEN number % 4 = 0 THEN 'FAILED' ELSE 'SUCCESSFUL' END, 'CI', 'https://ci/x',
                updated_on
           FROM pull_requests WHERE number % 3 = 0",
    )
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}
