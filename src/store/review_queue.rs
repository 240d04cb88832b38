//! The review queue read model behind the sweep, `/reviews` and chat messages: open PRs with
//! their verdict counts (first pass, streamed), then the details of the few a message shows.

use std::collections::HashMap;
use std::sync::LazyLock;

use anyhow::Context;
use futures_util::TryStreamExt;

use super::on_pool;
use super::{Db, PR_BUILD_STATE, REPO_REQUIRED_APPROVALS};
use crate::domain::{
    BuildState, PullRequestView, RepositoryKey, ReviewState, Reviewer, ReviewerFacts, Role,
    Timestamp, TurnCounts, TurnFacts, UserKey, DEFAULT_REQUIRED_APPROVALS,
};

/// A person's identifiers a `[[users]]` mapping may name, empty ones left out.
fn ids(ids: [Option<String>; 5]) -> Vec<String> {
    ids.into_iter()
        .flatten()
        .filter(|id| !id.is_empty())
        .collect()
}

/// An open PR as the first pass reads it: what routing, the turn (`TurnCounts`) and counting
/// need.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpenPr {
    /// The repository's lasting key (`repositories.repository_key`).
    pub repository_key: String,
    /// The repository's current name.
    pub full_name: String,
    /// The PR's number in its repository.
    pub number: i64,
    /// The title (a WIP-like title makes the PR unreviewable).
    pub title: String,
    /// Bitbucket's draft flag.
    pub draft: bool,
    /// Approvals that count (`TurnFacts::counted_approvals`): never the author's own; with the
    /// repository's `approvals_after_last_push`, only those on the current state.
    pub approvals: i64,
    /// Requests for changes that still stand (`TurnFacts::standing_changes_requested`).
    pub changes_requested: i64,
    /// The combined build state of the source commit (`FAILED`, `INPROGRESS`, `STOPPED`,
    /// `SUCCESSFUL`), if any status was reported.
    pub build_state: Option<String>,
    /// Open tasks, where a payload told.
    pub open_tasks: Option<i64>,
    /// The asker's own PR (always false without an asker).
    pub excluded: bool,
    /// The asker owes a review (`TurnFacts::owed`): a requested reviewer with neither an
    /// approval that counts nor a request for changes that stands, or a default reviewer of a
    /// PR with fewer requested reviewers than it needs approvals (always false without an
    /// asker).
    pub owes: bool,
    /// A current snooze hides it (read only by `for_each_open_with(.., with_snoozed: true, ..)`;
    /// else always false).
    pub snoozed: bool,
}

impl OpenPr {
    /// The counts its turn's kind follows from, under a route requiring `required_approvals`.
    pub fn turn_counts(&self, required_approvals: u32) -> TurnCounts {
        let count = |n: i64| u32::try_from(n).unwrap_or(0);
        TurnCounts {
            draft: self.draft,
            changes_requested: count(self.changes_requested),
            build: self.build_state.as_deref().and_then(BuildState::parse),
            approvals: count(self.approvals),
            required_approvals,
            open_tasks: self.open_tasks.and_then(|n| u32::try_from(n).ok()),
        }
    }

    /// The view to fill with `fill_details`.
    pub fn into_view(self, required_approvals: u32) -> PullRequestView {
        PullRequestView {
            key: RepositoryKey::from_stored(self.repository_key),
            repository: self.full_name,
            number: self.number,
            title: self.title,
            approvals: u32::try_from(self.approvals).unwrap_or(0),
            required_approvals,
            ..PullRequestView::default()
        }
    }
}

/// Streams every open PR, oldest first, that no current snooze hides: anyone's snooze without an
/// asker (a room's digest), the asker's own with one (their `/reviews`). `visit` sees each once.
pub async fn for_each_open(
    db: &Db,
    now: &Timestamp,
    asker: Option<&str>,
    visit: impl FnMut(OpenPr),
) -> anyhow::Result<()> {
    for_each_open_with(db, now, asker, false, visit).await
}

/// As `for_each_open`; with `with_snoozed`, the PRs a snooze hides come too, marked `snoozed`
/// (the status page lists them apart).
pub async fn for_each_open_with(
    db: &Db,
    now: &Timestamp,
    asker: Option<&str>,
    with_snoozed: bool,
    mut visit: impl FnMut(OpenPr),
) -> anyhow::Result<()> {
    let sql = format!(
        "{turn},
                $3 AND EXISTS (SELECT 1 FROM snoozes s
                             WHERE s.repository_key = p.repository_key AND s.number = p.number
                               AND s.until > $1 AND ($2 IS NULL OR s.user_key = $2)) AS snoozed,
                $2 IS NOT NULL AND p.author = $2 AS excluded,
                $2 IS NOT NULL AND EXISTS (SELECT 1 FROM reviews r
                    WHERE r.repository_key = p.repository_key AND r.number = p.number
                      AND r.user_key = $2 AND r.user_key <> p.author AND r.role = 'REVIEWER'
                      AND NOT ({counts} OR {blocks}))
                OR $2 IS NOT NULL AND EXISTS (SELECT 1 FROM default_reviewers d
                    WHERE d.repository_key = p.repository_key AND d.number = p.number
                      AND d.user_key = $2 AND d.user_key <> p.author
                      AND (SELECT count(*) FROM reviews r
                            WHERE r.repository_key = p.repository_key AND r.number = p.number
                              AND r.role = 'REVIEWER' AND r.user_key <> p.author)
                          < coalesce({REPO_REQUIRED_APPROVALS}, {default_required})
                      AND NOT EXISTS (SELECT 1 FROM reviews r
                            WHERE r.repository_key = p.repository_key AND r.number = p.number
                              AND r.user_key = $2
                              AND (r.role = 'REVIEWER' OR {counts} OR {blocks}))) AS owes
           {FROM_PR}
          WHERE p.state = 'OPEN'
            AND ($3 OR NOT EXISTS (SELECT 1 FROM snoozes s
                             WHERE s.repository_key = p.repository_key AND s.number = p.number
                               AND s.until > $1 AND ($2 IS NULL OR s.user_key = $2)))
          ORDER BY p.created_on, p.repository_key, p.number",
        turn = *OPEN_PR_TURN,
        counts = *COUNTS,
        blocks = *BLOCKS,
        default_required = DEFAULT_REQUIRED_APPROVALS,
    );
    on_pool!(db, pool => {
    let mut rows = sqlx::query_as::<_, OpenPr>(&sql)
    .bind(now.as_str())
    .bind(asker)
    .bind(with_snoozed)
    .fetch(pool);
    while let Some(row) = rows
        .try_next()
        .await
        .context("reading open pull requests")?
    {
        visit(row);
    }
    Ok(())
    })
}

/// Whether the verdict of `reviews r` was given on the current state of `pull_requests p`, as
/// `TurnFacts` decides it: Data Center's `lastReviewedCommit` against the source commit (either
/// a prefix of the other: Cloud gives 12 hex digits) when both are known, else the verdict's
/// date against `pushed_on`, else current; an empty commit matches none, as in `TurnFacts`. (The
/// view `open_pull_requests` compares the commits exactly: Data Center, the only source of
/// `lastReviewedCommit`, gives 40 digits on both sides.)
const CURRENT: &str = "(CASE WHEN r.reviewed_commit IS NOT NULL AND p.source_commit IS NOT NULL
                  THEN r.reviewed_commit <> '' AND p.source_commit <> ''
                   AND (substr(lower(p.source_commit), 1, length(r.reviewed_commit))
                            = r.reviewed_commit
                        OR substr(r.reviewed_commit, 1, length(p.source_commit))
                            = lower(p.source_commit))
             WHEN r.state_on IS NOT NULL AND p.pushed_on IS NOT NULL
                  THEN r.state_on >= p.pushed_on
             ELSE true END)";

/// `reviews r`'s verdict is an approval that counts (`TurnFacts::counted_approvals`).
static COUNTS: LazyLock<String> = LazyLock::new(|| {
    format!("(r.state = 'approved' AND (NOT repo.approvals_after_last_push OR {CURRENT}))")
});
/// `reviews r`'s verdict is a request for changes that stands.
static BLOCKS: LazyLock<String> =
    LazyLock::new(|| format!("(r.state = 'changes_requested' AND {CURRENT})"));

/// The columns of an `OpenPr` that the turn needs, from `pull_requests p` joined to its
/// repository `repo`: verdicts counted by `COUNTS` and `BLOCKS` among people other than the
/// author, the build state, the open tasks.
static OPEN_PR_TURN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT p.repository_key, repo.full_name, p.number, p.title, p.draft,
            (SELECT count(*) FROM reviews r
              WHERE r.repository_key = p.repository_key AND r.number = p.number
                AND r.user_key <> p.author AND {counts}) AS approvals,
            (SELECT count(*) FROM reviews r
              WHERE r.repository_key = p.repository_key AND r.number = p.number
                AND r.user_key <> p.author AND {blocks}) AS changes_requested,
            {PR_BUILD_STATE} AS build_state, p.open_tasks",
        counts = *COUNTS,
        blocks = *BLOCKS,
    )
});

/// The columns of an `OpenPr` read without an asker (no one excluded, no one owing), from
/// `pull_requests p` joined to its repository `repo`.
static OPEN_PR: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}, false AS excluded, false AS owes, false AS snoozed",
        *OPEN_PR_TURN
    )
});
const FROM_PR: &str = "FROM pull_requests p
           JOIN repositories repo ON repo.repository_key = p.repository_key";

/// The open PRs `author` wrote, oldest first, whatever their approvals.
pub async fn authored_open(db: &Db, author: &str) -> anyhow::Result<Vec<OpenPr>> {
    on_pool!(db, pool => sqlx::query_as(&format!(
        "{open_pr} {FROM_PR}
          WHERE p.author = $1 AND p.state = 'OPEN'
          ORDER BY p.created_on, p.repository_key, p.number",
        open_pr = *OPEN_PR,
    ))
    .bind(author)
    .fetch_all(pool)
    .await)
    .context("reading the author's pull requests")
}

/// One PR as it is now, with every detail, for a chat message; `None` if it is unknown.
/// Its required approvals are the repository's (as routes set them at start), else the default.
pub async fn load(
    db: &Db,
    repository: &RepositoryKey,
    number: i64,
) -> anyhow::Result<Option<PullRequestView>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        pr: OpenPr,
        required_approvals: Option<i64>,
    }
    let row: Option<Row> = on_pool!(db, pool => sqlx::query_as(&format!(
        "{open_pr},
                {REPO_REQUIRED_APPROVALS} AS required_approvals
           {FROM_PR}
          WHERE p.repository_key = $1 AND p.number = $2",
        open_pr = *OPEN_PR,
    ))
    .bind(repository.as_str())
    .bind(number)
    .fetch_optional(pool)
    .await)
    .context("reading the pull request to announce")?;
    let Some(Row {
        pr,
        required_approvals,
    }) = row
    else {
        return Ok(None);
    };
    let required = required_approvals
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(DEFAULT_REQUIRED_APPROVALS);
    let mut view = pr.into_view(required);
    fill_details(db, std::iter::once(&mut view)).await?;
    Ok(Some(view))
}

/// Link, author, age, build (and which builds fail), who approved or asked for changes, and who
/// was asked to review and has not yet, for the PRs a message shows.
pub async fn fill_details<'a>(
    db: &Db,
    views: impl IntoIterator<Item = &'a mut PullRequestView>,
) -> anyhow::Result<()> {
    let mut views: Vec<&mut PullRequestView> = views.into_iter().collect();
    if views.is_empty() {
        return Ok(());
    }
    // A PR may be shown more than once (in each room of a route): its details are read once,
    // filled into its first view, then copied to the others.
    let mut groups: HashMap<(String, i64), Vec<usize>> = HashMap::new();
    let mut keys: Vec<(String, i64)> = Vec::new();
    for (i, view) in views.iter().enumerate() {
        let key = (view.key.as_str().to_owned(), view.number);
        let group = groups.entry(key.clone()).or_default();
        if group.is_empty() {
            keys.push(key);
        }
        group.push(i);
    }
    let keys = serde_json::to_string(&keys).context("encoding keys")?;

    #[derive(sqlx::FromRow)]
    struct Detail {
        repository_key: String,
        number: i64,
        url: Option<String>,
        author: String,
        author_key: String,
        author_account_id: Option<String>,
        author_nickname: Option<String>,
        author_username: Option<String>,
        author_email: Option<String>,
        created_on: String,
        updated_on: String,
        draft: bool,
        open_tasks: Option<i64>,
        source_commit: Option<String>,
        pushed_on: Option<String>,
        approvals_after_last_push: bool,
        build_state: Option<String>,
        /// The newest build status's time on the source commit.
        build_on: Option<String>,
        /// JSON array of [name, url] of the failing builds.
        failed_builds: String,
    }
    let details: Vec<Detail> = on_pool!(db, pool => sqlx::query_as(&format!(
        "SELECT p.repository_key, p.number, p.url,
                coalesce(a.display_name, a.nickname, a.username, p.author) AS author,
                p.author AS author_key, a.account_id AS author_account_id,
                a.nickname AS author_nickname, a.username AS author_username,
                a.email AS author_email,
                p.created_on, p.updated_on, p.draft, p.open_tasks, p.source_commit, p.pushed_on,
                repo.approvals_after_last_push,
                {PR_BUILD_STATE} AS build_state,
                (SELECT max(cs.updated_on) FROM commit_statuses cs
                  WHERE cs.commit_hash >= lower(p.source_commit)
                    AND cs.commit_hash < lower(p.source_commit) || 'g') AS build_on,
                (SELECT {failed}
                   FROM commit_statuses cs
                  WHERE cs.state = 'FAILED' AND cs.commit_hash >= lower(p.source_commit)
                    AND cs.commit_hash < lower(p.source_commit) || 'g') AS failed_builds
           FROM {keys}
           JOIN pull_requests p ON p.repository_key = j.value->>0
                               AND p.number = CAST(j.value->>1 AS BIGINT)
           JOIN repositories repo ON repo.repository_key = p.repository_key
           LEFT JOIN users a ON a.user_key = p.author",
        failed = db.json_agg(&db.json_array(&["coalesce(cs.name, cs.key)", "cs.url"])),
        keys = db.json_rows(1),
    ))
    .bind(&keys)
    .fetch_all(pool)
    .await)
    .context("reading the listed pull requests")?;

    /// Everyone attached with a verdict, and the requested reviewers who have none yet.
    #[derive(sqlx::FromRow)]
    struct Person {
        repository_key: String,
        number: i64,
        state: String,
        role: String,
        state_on: Option<String>,
        reviewed_commit: Option<String>,
        name: String,
        user_key: String,
        account_id: Option<String>,
        nickname: Option<String>,
        username: Option<String>,
        email: Option<String>,
    }
    let sql = format!(
        "SELECT r.repository_key, r.number, r.state, r.role, r.state_on, r.reviewed_commit,
                coalesce(u.display_name, u.nickname, u.username, r.user_key) AS name,
                r.user_key, u.account_id, u.nickname, u.username, u.email
           FROM {}
           JOIN pull_requests p ON p.repository_key = j.value->>0
                               AND p.number = CAST(j.value->>1 AS BIGINT)
           JOIN reviews r ON r.repository_key = p.repository_key AND r.number = p.number
           LEFT JOIN users u ON u.user_key = r.user_key
          WHERE (r.state <> 'none' OR r.role = 'REVIEWER') AND r.user_key <> p.author
          ORDER BY r.state_on NULLS FIRST, r.user_key",
        // A verdict without a date (Data Center dates only the acting reviewer's) comes first:
        // SQLite's default, said outright for PostgreSQL.
        db.json_rows(1)
    );
    let people: Vec<Person> = on_pool!(db, pool => sqlx::query_as(&sql)
    .bind(&keys)
    .fetch_all(pool)
    .await)
    .context("reading reviewers")?;

    let first = |key: &str, number: i64| {
        groups
            .get(&(key.to_owned(), number))
            .and_then(|g| g.first().copied())
    };
    // Each PR's turn facts (issue 23), completed by its people below.
    let mut facts: HashMap<usize, TurnFacts> = HashMap::new();
    let at = |text: &str| Timestamp::parse(text).ok();
    for d in details {
        let Some(i) = first(&d.repository_key, d.number) else {
            continue;
        };
        let view = &mut views[i];
        view.url = d.url;
        view.author_as = Reviewer {
            name: d.author.clone(),
            ids: ids([
                Some(d.author_key.clone()),
                d.author_account_id,
                d.author_nickname,
                d.author_username,
                d.author_email,
            ]),
            hipchat: None,
            slack: None,
            google_chat: None,
            teams: None,
        };
        view.author = d.author;
        let created_on = at(&d.created_on);
        view.created_on = created_on
            .as_ref()
            .map(Timestamp::to_datetime)
            .unwrap_or_default();
        view.build_state = d.build_state.as_deref().and_then(BuildState::parse);
        view.failed_builds = serde_json::from_str(&d.failed_builds).unwrap_or_default();
        view.open_tasks = d.open_tasks.and_then(|n| u32::try_from(n).ok());
        let Some(created_on) = created_on else {
            continue;
        };
        let build = view.build_state.zip(d.build_on.as_deref().and_then(at));
        facts.insert(
            i,
            TurnFacts {
                author: UserKey::from(d.author_key),
                reviewers: Vec::new(),
                default_reviewers: Vec::new(),
                required_approvals: view.required_approvals,
                approvals_after_last_push: d.approvals_after_last_push,
                source_commit: d.source_commit,
                pushed_on: d.pushed_on.as_deref().and_then(at),
                build,
                draft: d.draft,
                open_tasks: view.open_tasks,
                updated_on: at(&d.updated_on).unwrap_or_else(|| created_on.clone()),
                created_on,
            },
        );
    }
    // Everyone who may owe a review, by key, for the owed list.
    let mut reviewers: HashMap<(usize, String), Reviewer> = HashMap::new();
    for p in people {
        let Some(i) = first(&p.repository_key, p.number) else {
            continue;
        };
        let view = &mut views[i];
        let state = match p.state.as_str() {
            "approved" => {
                view.approved_by.push(p.name.clone());
                ReviewState::Approved
            }
            "changes_requested" => {
                view.changes_requested_by.push(p.name.clone());
                ReviewState::ChangesRequested
            }
            _ => ReviewState::None,
        };
        let role = if p.role == "REVIEWER" {
            Role::Reviewer
        } else {
            Role::Participant
        };
        if let Some(f) = facts.get_mut(&i) {
            f.reviewers.push(ReviewerFacts {
                key: UserKey::from(p.user_key.clone()),
                role,
                state,
                state_on: p.state_on.as_deref().and_then(at),
                reviewed_commit: p.reviewed_commit,
            });
        }
        reviewers.insert(
            (i, p.user_key.clone()),
            Reviewer {
                name: p.name,
                ids: ids([
                    Some(p.user_key),
                    p.account_id,
                    p.nickname,
                    p.username,
                    p.email,
                ]),
                hipchat: None,
                slack: None,
                google_chat: None,
                teams: None,
            },
        );
    }
    // The default reviewers (issue 23), who owe a review when too few were requested.
    #[derive(sqlx::FromRow)]
    struct Default {
        repository_key: String,
        number: i64,
        user_key: String,
        name: String,
        account_id: Option<String>,
        nickname: Option<String>,
        username: Option<String>,
        email: Option<String>,
    }
    let defaults: Vec<Default> = on_pool!(db, pool => sqlx::query_as(&format!(
        "SELECT d.repository_key, d.number, d.user_key,
                coalesce(u.display_name, u.nickname, u.username, d.user_key) AS name,
                u.account_id, u.nickname, u.username, u.email
           FROM {}
           JOIN default_reviewers d ON d.repository_key = j.value->>0
                                   AND d.number = CAST(j.value->>1 AS BIGINT)
           LEFT JOIN users u ON u.user_key = d.user_key
          ORDER BY d.position",
        db.json_rows(1)
    ))
    .bind(&keys)
    .fetch_all(pool)
    .await)
    .context("reading default reviewers")?;
    for d in defaults {
        let Some(i) = first(&d.repository_key, d.number) else {
            continue;
        };
        if let Some(f) = facts.get_mut(&i) {
            f.default_reviewers.push(UserKey::from(d.user_key.clone()));
        }
        reviewers
            .entry((i, d.user_key.clone()))
            .or_insert_with(|| Reviewer {
                name: d.name,
                ids: ids([
                    Some(d.user_key),
                    d.account_id,
                    d.nickname,
                    d.username,
                    d.email,
                ]),
                hipchat: None,
                slack: None,
                google_chat: None,
                teams: None,
            });
    }
    for (i, f) in facts {
        let view = &mut views[i];
        if f.approvals_after_last_push {
            // Only the approvals that count are shown and counted: one given before the latest
            // new commit is owed again.
            view.approved_by = f
                .counted_approvals()
                .iter()
                .filter_map(|r| reviewers.get(&(i, r.key.as_str().to_owned())))
                .map(|r| r.name.clone())
                .collect();
            view.approvals = f.approvals();
        }
        view.waiting_for = f
            .owed()
            .iter()
            .filter_map(|key| reviewers.remove(&(i, key.as_str().to_owned())))
            .collect();
        view.turn = Some(f.turn());
        view.turn_since = Some(f.since().to_datetime());
    }
    for group in groups.values().filter(|g| g.len() > 1) {
        let filled = views[group[0]].clone();
        for &i in &group[1..] {
            let view = &mut views[i];
            view.url.clone_from(&filled.url);
            view.author.clone_from(&filled.author);
            view.created_on = filled.created_on;
            view.build_state.clone_from(&filled.build_state);
            view.failed_builds.clone_from(&filled.failed_builds);
            view.approved_by.clone_from(&filled.approved_by);
            view.changes_requested_by
                .clone_from(&filled.changes_requested_by);
            view.waiting_for.clone_from(&filled.waiting_for);
            view.author_as.clone_from(&filled.author_as);
            view.turn.clone_from(&filled.turn);
            view.turn_since = filled.turn_since;
            view.open_tasks = filled.open_tasks;
            view.approvals = filled.approvals;
        }
    }
    Ok(())
}
