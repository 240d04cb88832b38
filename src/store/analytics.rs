//! The review flow's read (issue 28): the dated facts the writer keeps
//! (`pull_request_facts`, `pull_request_turns`, `pull_request_review_requests`, see
//! `writer::facts`), one query per table, for `ReviewFlow::compute`.

use anyhow::Context;

use super::on_pool;
use super::Db;
use crate::domain::analytics::{FlowRows, PrFacts, ReviewRequest, TurnSpan};
use crate::domain::{PrState, RepositoryKey, Timestamp};

/// Which PRs a report reads (`f` is `pull_request_facts`): open now, or closed or opened at or
/// after `$1`; of the repository named `$2` (any case) when one is given.
const CHOSEN: &str = "(f.state = 'OPEN' OR f.closed_on >= $1 OR f.created_on >= $1)
   AND ($2 IS NULL OR lower(f.repository_name) = lower($2))";

#[derive(sqlx::FromRow)]
struct FactsRow {
    repository_key: String,
    repository_name: String,
    number: i64,
    title: String,
    url: Option<String>,
    author: String,
    created_on: String,
    ready_on: Option<String>,
    first_review_on: Option<String>,
    approved_on: Option<String>,
    state: String,
    closed_on: Option<String>,
    approvals: i64,
    required_approvals: i64,
    rounds: i64,
}

fn at(text: String) -> anyhow::Result<Timestamp> {
    Timestamp::parse(&text).map_err(anyhow::Error::msg)
}

fn at_opt(text: Option<String>) -> anyhow::Result<Option<Timestamp>> {
    text.map(at).transpose()
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

impl FactsRow {
    fn into_domain(self) -> anyhow::Result<PrFacts> {
        Ok(PrFacts {
            repository: RepositoryKey::from_stored(self.repository_key),
            repository_name: self.repository_name,
            number: self.number,
            title: self.title,
            url: self.url,
            author: self.author.into(),
            created_on: at(self.created_on)?,
            ready_on: at_opt(self.ready_on)?,
            first_review_on: at_opt(self.first_review_on)?,
            approved_on: at_opt(self.approved_on)?,
            state: PrState::parse(&self.state).unwrap_or(PrState::Open),
            closed_on: at_opt(self.closed_on)?,
            approvals: count(self.approvals),
            required_approvals: count(self.required_approvals),
            rounds: count(self.rounds),
        })
    }
}

/// Reads the dated facts of every PR open now, or closed or opened at or after `earliest`,
/// with their turn spans (by PR, then `since`) and review requests (by PR, then reviewer);
/// `repository` keeps one repository's, by full name in any case. PRs come by repository key
/// and number. Errors: the database's, or a stored date that does not parse.
pub async fn read(
    db: &Db,
    earliest: &Timestamp,
    repository: Option<&str>,
) -> anyhow::Result<FlowRows> {
    let facts_sql = format!(
        "SELECT f.repository_key, f.repository_name, f.number, f.title, f.url, f.author,
                f.created_on, f.ready_on, f.first_review_on, f.approved_on, f.state, f.closed_on,
                f.approvals, f.required_approvals, f.rounds
           FROM pull_request_facts f
          WHERE {CHOSEN}
          ORDER BY f.repository_key, f.number"
    );
    let facts: Vec<FactsRow> = on_pool!(db, pool => sqlx::query_as(&facts_sql)
        .bind(earliest.as_str())
        .bind(repository)
        .fetch_all(pool)
        .await)
    .context("reading the pull requests' dated facts")?;
    let turns_sql = format!(
        "SELECT t.repository_key, t.number, t.turn, t.since, t.until
           FROM pull_request_facts f
           JOIN pull_request_turns t ON t.repository_key = f.repository_key
                                    AND t.number = f.number
          WHERE {CHOSEN}
          ORDER BY t.repository_key, t.number, t.since"
    );
    let turns: Vec<(String, i64, String, String, Option<String>)> =
        on_pool!(db, pool => sqlx::query_as(&turns_sql)
        .bind(earliest.as_str())
        .bind(repository)
        .fetch_all(pool)
        .await)
        .context("reading the pull requests' turns")?;
    let requests_sql = format!(
        "SELECT q.repository_key, q.number, q.reviewer, q.reviewer_name, q.asked_on,
                q.reviewed_on
           FROM pull_request_facts f
           JOIN pull_request_review_requests q ON q.repository_key = f.repository_key
                                              AND q.number = f.number
          WHERE {CHOSEN}
          ORDER BY q.repository_key, q.number, q.reviewer"
    );
    let requests: Vec<(String, i64, String, String, String, Option<String>)> =
        on_pool!(db, pool => sqlx::query_as(&requests_sql)
        .bind(earliest.as_str())
        .bind(repository)
        .fetch_all(pool)
        .await)
        .context("reading the pull requests' review requests")?;
    Ok(FlowRows {
        facts: facts
            .into_iter()
            .map(FactsRow::into_domain)
            .collect::<anyhow::Result<_>>()?,
        turns: turns
            .into_iter()
            .map(|(key, number, turn, since, until)| {
                Ok(TurnSpan {
                    repository: RepositoryKey::from_stored(key),
                    number,
                    turn,
                    since: at(since)?,
                    until: at_opt(until)?,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        requests: requests
            .into_iter()
            .map(|(key, number, reviewer, name, asked_on, reviewed_on)| {
                Ok(ReviewRequest {
                    repository: RepositoryKey::from_stored(key),
                    number,
                    reviewer: reviewer.into(),
                    reviewer_name: name,
                    asked_on: at(asked_on)?,
                    reviewed_on: at_opt(reviewed_on)?,
                })
            })
            .collect::<anyhow::Result<_>>()?,
    })
}
