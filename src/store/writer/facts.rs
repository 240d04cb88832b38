//! The review flow's dated facts (issue 28), written in the transaction that applies each PR
//! snapshot: the batch's stored facts are read with the look-up before the batch (`BEFORE_*`
//! fragments, joined into `BEFORE_BATCH`), `domain::flow_facts::fold` computes each PR's new
//! rows, and three upserts write them (`pull_request_facts`, `pull_request_turns`,
//! `pull_request_review_requests`), each reading the whole batch from one JSON parameter as the
//! writer's other statements do.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::analytics::{PrFacts, ReviewRequest, TurnSpan};
use crate::domain::flow_facts::{fold, FactsState, FoldContext};
use crate::domain::routing::Routing;
use crate::domain::{BuildState, CommitStatus, PrState, PullRequest, RepositoryKey, Timestamp};

/// SQLite: the stored facts of the batch's PRs (`?`: the PR keys, `[key, number, commit]`).
pub(super) const SQLITE_BEFORE_FACTS: &str = "\
 'facts', (SELECT json_group_array(json_object(
        'repository_key', f.repository_key, 'number', f.number,
        'repository_name', f.repository_name, 'title', f.title, 'url', f.url, 'author', f.author,
        'created_on', f.created_on, 'ready_on', f.ready_on, 'first_review_on', f.first_review_on,
        'approved_on', f.approved_on, 'state', f.state, 'closed_on', f.closed_on,
        'approvals', f.approvals, 'required_approvals', f.required_approvals, 'rounds', f.rounds,
        'updated_on', f.updated_on, 'source_commit', f.source_commit, 'pushed_on', f.pushed_on,
        'blocked', f.blocked, 'turn', f.turn, 'turn_since', f.turn_since))
      FROM json_each(?) j
      JOIN pull_request_facts f ON f.repository_key = j.value->>0 AND f.number = j.value->>1),
 'requests', (SELECT json_group_array(json_array(q.repository_key, q.number, q.reviewer,
                     q.reviewer_name, q.asked_on, q.reviewed_on))
      FROM json_each(?) j
      JOIN pull_request_review_requests q
        ON q.repository_key = j.value->>0 AND q.number = j.value->>1),
 'pr_builds', (SELECT json_group_array(json_array(j.value->>0, j.value->>1, c.state,
                      c.updated_on))
      FROM json_each(?) j
      JOIN commit_statuses c ON c.commit_hash >= lower(j.value->>2)
                            AND c.commit_hash < lower(j.value->>2) || 'g'
     WHERE j.value->>2 IS NOT NULL)";

/// PostgreSQL: the same as `SQLITE_BEFORE_FACTS`, from the PR keys `$2` of `BEFORE_BATCH`.
pub(super) const POSTGRES_BEFORE_FACTS: &str = "\
 'facts', coalesce((SELECT json_agg(json_build_object(
        'repository_key', f.repository_key, 'number', f.number,
        'repository_name', f.repository_name, 'title', f.title, 'url', f.url, 'author', f.author,
        'created_on', f.created_on, 'ready_on', f.ready_on, 'first_review_on', f.first_review_on,
        'approved_on', f.approved_on, 'state', f.state, 'closed_on', f.closed_on,
        'approvals', f.approvals, 'required_approvals', f.required_approvals, 'rounds', f.rounds,
        'updated_on', f.updated_on, 'source_commit', f.source_commit, 'pushed_on', f.pushed_on,
        'blocked', CASE WHEN f.blocked THEN 1 ELSE 0 END, 'turn', f.turn,
        'turn_since', f.turn_since))
      FROM jsonb_array_elements(CAST($2 AS jsonb)) j
      JOIN pull_request_facts f ON f.repository_key = j->>0 AND f.number = CAST(j->>1 AS bigint)),
      '[]'),
 'requests', coalesce((SELECT json_agg(json_build_array(q.repository_key, q.number, q.reviewer,
                     q.reviewer_name, q.asked_on, q.reviewed_on))
      FROM jsonb_array_elements(CAST($2 AS jsonb)) j
      JOIN pull_request_review_requests q
        ON q.repository_key = j->>0 AND q.number = CAST(j->>1 AS bigint)), '[]'),
 'pr_builds', coalesce((SELECT json_agg(json_build_array(j->>0, CAST(j->>1 AS bigint), c.state,
                      c.updated_on))
      FROM jsonb_array_elements(CAST($2 AS jsonb)) j
      JOIN commit_statuses c ON c.commit_hash >= lower(j->>2)
                            AND c.commit_hash < lower(j->>2) || 'g'
     WHERE j->>2 IS NOT NULL), '[]')";

const FACT_COLUMNS: &str = "repository_key, number, repository_name, title, url, author, \
    created_on, ready_on, first_review_on, approved_on, state, closed_on, approvals, \
    required_approvals, rounds, updated_on, source_commit, pushed_on, blocked, turn, turn_since";

const FACT_UPDATES: &str = "repository_name = excluded.repository_name, title = excluded.title,
    url = excluded.url, author = excluded.author, created_on = excluded.created_on,
    ready_on = excluded.ready_on, first_review_on = excluded.first_review_on,
    approved_on = excluded.approved_on, state = excluded.state, closed_on = excluded.closed_on,
    approvals = excluded.approvals, required_approvals = excluded.required_approvals,
    rounds = excluded.rounds, updated_on = excluded.updated_on,
    source_commit = excluded.source_commit, pushed_on = excluded.pushed_on,
    blocked = excluded.blocked, turn = excluded.turn, turn_since = excluded.turn_since";

/// SQLite: the facts rows (`FactsRow`), the turn spans (`SpanRow`) and the review requests
/// (`RequestRow`) of the batch, each a whole row computed by `fold`.
pub(super) fn sqlite_writes() -> [String; 3] {
    let values = FACT_COLUMNS
        .split(',')
        .map(|c| format!("v->>'{}'", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    [
        format!(
            "WITH batch(v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?))
INSERT INTO pull_request_facts ({FACT_COLUMNS})
SELECT {values} FROM batch WHERE true
ON CONFLICT (repository_key, number) DO UPDATE SET {FACT_UPDATES}"
        ),
        "WITH batch(v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?))
INSERT INTO pull_request_turns (repository_key, number, turn, since, until)
SELECT v->>'repository_key', v->>'number', v->>'turn', v->>'since', v->>'until'
FROM batch WHERE true
ON CONFLICT (repository_key, number, since) DO UPDATE SET
    turn = excluded.turn, until = excluded.until"
            .to_owned(),
        "WITH batch(v) AS MATERIALIZED (SELECT jsonb(value) FROM json_each(?))
INSERT INTO pull_request_review_requests (repository_key, number, reviewer, reviewer_name,
    asked_on, reviewed_on)
SELECT v->>'repository_key', v->>'number', v->>'reviewer', v->>'reviewer_name',
    v->>'asked_on', v->>'reviewed_on'
FROM batch WHERE true
ON CONFLICT (repository_key, number, reviewer) DO UPDATE SET
    reviewer_name = excluded.reviewer_name, asked_on = excluded.asked_on,
    reviewed_on = excluded.reviewed_on"
            .to_owned(),
    ]
}

/// PostgreSQL: the same writes as `sqlite_writes`, rows in key order.
pub(super) fn postgres_writes() -> [String; 3] {
    [
        format!(
            "INSERT INTO pull_request_facts AS t ({FACT_COLUMNS})
SELECT {FACT_COLUMNS}
FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS b(repository_key text, number bigint,
    repository_name text, title text, url text, author text, created_on text, ready_on text,
    first_review_on text, approved_on text, state text, closed_on text, approvals bigint,
    required_approvals bigint, rounds bigint, updated_on text, source_commit text,
    pushed_on text, blocked boolean, turn text, turn_since text)
ORDER BY repository_key, number
ON CONFLICT (repository_key, number) DO UPDATE SET {FACT_UPDATES}"
        ),
        "INSERT INTO pull_request_turns AS t (repository_key, number, turn, since, until)
SELECT repository_key, number, turn, since, until
FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS b(repository_key text, number bigint, turn text,
    since text, until text)
ORDER BY repository_key, number, since
ON CONFLICT (repository_key, number, since) DO UPDATE SET
    turn = excluded.turn, until = excluded.until"
            .to_owned(),
        "INSERT INTO pull_request_review_requests AS t (repository_key, number, reviewer,
    reviewer_name, asked_on, reviewed_on)
SELECT repository_key, number, reviewer, reviewer_name, asked_on, reviewed_on
FROM jsonb_to_recordset(CAST($1 AS jsonb)) AS b(repository_key text, number bigint,
    reviewer text, reviewer_name text, asked_on text, reviewed_on text)
ORDER BY repository_key, number, reviewer
ON CONFLICT (repository_key, number, reviewer) DO UPDATE SET
    reviewer_name = excluded.reviewer_name, asked_on = excluded.asked_on,
    reviewed_on = excluded.reviewed_on"
            .to_owned(),
    ]
}

/// One `pull_request_facts` row, as read and as written.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FactsRow {
    repository_key: String,
    number: i64,
    repository_name: String,
    title: String,
    url: Option<String>,
    author: String,
    created_on: Timestamp,
    ready_on: Option<Timestamp>,
    first_review_on: Option<Timestamp>,
    approved_on: Option<Timestamp>,
    state: String,
    closed_on: Option<Timestamp>,
    approvals: i64,
    required_approvals: i64,
    rounds: i64,
    updated_on: Timestamp,
    source_commit: Option<String>,
    pushed_on: Option<Timestamp>,
    /// 0 or 1 as read (both databases' look-ups say so); a boolean as written.
    #[serde(deserialize_with = "flag")]
    blocked: bool,
    turn: Option<String>,
    turn_since: Option<Timestamp>,
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(i64::deserialize(d)? != 0)
}

impl FactsRow {
    fn into_state(self) -> FactsState {
        FactsState {
            facts: PrFacts {
                repository: RepositoryKey::from_stored(self.repository_key),
                repository_name: self.repository_name,
                number: self.number,
                title: self.title,
                url: self.url,
                author: self.author.into(),
                created_on: self.created_on,
                ready_on: self.ready_on,
                first_review_on: self.first_review_on,
                approved_on: self.approved_on,
                state: PrState::parse(&self.state).unwrap_or(PrState::Open),
                closed_on: self.closed_on,
                approvals: u32::try_from(self.approvals).unwrap_or(0),
                required_approvals: u32::try_from(self.required_approvals).unwrap_or(0),
                rounds: u32::try_from(self.rounds).unwrap_or(0),
            },
            updated_on: self.updated_on,
            source_commit: self.source_commit,
            pushed_on: self.pushed_on,
            blocked: self.blocked,
            turn: self.turn,
            turn_since: self.turn_since,
        }
    }

    fn from_state(s: FactsState) -> Self {
        let f = s.facts;
        FactsRow {
            repository_key: f.repository.as_str().to_owned(),
            number: f.number,
            repository_name: f.repository_name,
            title: f.title,
            url: f.url,
            author: f.author.as_str().to_owned(),
            created_on: f.created_on,
            ready_on: f.ready_on,
            first_review_on: f.first_review_on,
            approved_on: f.approved_on,
            state: f.state.as_str().to_owned(),
            closed_on: f.closed_on,
            approvals: i64::from(f.approvals),
            required_approvals: i64::from(f.required_approvals),
            rounds: i64::from(f.rounds),
            updated_on: s.updated_on,
            source_commit: s.source_commit,
            pushed_on: s.pushed_on,
            blocked: s.blocked,
            turn: s.turn,
            turn_since: s.turn_since,
        }
    }
}

/// (repository key, number, reviewer, reviewer name, asked on, reviewed on).
pub(super) type StoredRequestRow = (String, i64, String, String, Timestamp, Option<Timestamp>);

/// (repository key, number, build state, updated on) of each stored status of a PR's commit.
pub(super) type StoredBuildRow = (String, i64, String, Timestamp);

#[derive(Serialize)]
struct SpanRow<'a> {
    repository_key: &'a str,
    number: i64,
    turn: &'a str,
    since: &'a Timestamp,
    until: Option<&'a Timestamp>,
}

#[derive(Serialize)]
struct RequestRow<'a> {
    repository_key: &'a str,
    number: i64,
    reviewer: &'a str,
    reviewer_name: &'a str,
    asked_on: &'a Timestamp,
    reviewed_on: Option<&'a Timestamp>,
}

/// A point a PR reached in a batch, observed by the histograms after the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowPoint {
    /// Its first review, this many seconds after it was ready.
    FirstReview(i64),
    /// Its merge, this many seconds after it was ready (else opened).
    Merged(i64),
}

/// What the batch's look-up read for the facts.
#[derive(Default, Deserialize)]
pub(super) struct StoredFacts {
    #[serde(default)]
    pub facts: Vec<FactsRow>,
    #[serde(default)]
    pub requests: Vec<StoredRequestRow>,
    #[serde(default)]
    pub pr_builds: Vec<StoredBuildRow>,
}

/// The combined state of builds: any failure wins, then running, then stopped; dated by the
/// newest status.
fn combine<'a>(
    builds: impl Iterator<Item = (BuildState, &'a Timestamp)>,
) -> Option<(BuildState, Timestamp)> {
    let rank = |s: BuildState| match s {
        BuildState::Failed => 3,
        BuildState::InProgress => 2,
        BuildState::Stopped => 1,
        BuildState::Successful => 0,
    };
    builds.fold(
        None,
        |acc: Option<(BuildState, Timestamp)>, (state, on)| match acc {
            None => Some((state, on.clone())),
            Some((kept, kept_on)) => Some((
                if rank(state) > rank(kept) {
                    state
                } else {
                    kept
                },
                kept_on.max(on.clone()),
            )),
        },
    )
}

/// Folds the batch's PR snapshots (`prs`, every snapshot, stale ones too) into the stored facts
/// and encodes the three writes into `facts`, `turns` and `requests`. Returns the points PRs
/// reached.
pub(super) fn encode(
    stored: StoredFacts,
    prs: &[&PullRequest],
    statuses: &[&CommitStatus],
    routing: &Routing,
    out: (&mut String, &mut String, &mut String),
) -> anyhow::Result<Vec<FlowPoint>> {
    let mut by_pr: HashMap<(&RepositoryKey, i64), Vec<&PullRequest>> = HashMap::new();
    for pr in prs {
        by_pr
            .entry((&pr.repository.key, pr.number))
            .or_default()
            .push(pr);
    }
    let mut facts: HashMap<(String, i64), FactsState> = stored
        .facts
        .into_iter()
        .map(|row| ((row.repository_key.clone(), row.number), row.into_state()))
        .collect();
    let mut requests: HashMap<(String, i64), Vec<ReviewRequest>> = HashMap::new();
    for (key, number, reviewer, name, asked_on, reviewed_on) in stored.requests {
        let list = requests.entry((key.clone(), number)).or_default();
        if list.iter().any(|r| r.reviewer.as_str() == reviewer) {
            continue;
        }
        list.push(ReviewRequest {
            repository: RepositoryKey::from_stored(key),
            number,
            reviewer: reviewer.into(),
            reviewer_name: name,
            asked_on,
            reviewed_on,
        });
    }
    let mut builds: HashMap<(String, i64), Vec<(BuildState, Timestamp)>> = HashMap::new();
    for (key, number, state, on) in stored.pr_builds {
        if let Some(state) = BuildState::parse(&state) {
            builds.entry((key, number)).or_default().push((state, on));
        }
    }

    let mut fact_rows = Vec::with_capacity(by_pr.len());
    let mut span_rows: Vec<TurnSpan> = Vec::new();
    let mut request_rows: Vec<ReviewRequest> = Vec::new();
    let mut points = Vec::new();
    for ((key, number), snapshots) in by_pr {
        let Some(newest) = snapshots
            .iter()
            .max_by(|a, b| a.updated_on.cmp(&b.updated_on))
        else {
            continue;
        };
        let stored_key = (key.as_str().to_owned(), number);
        let route = routing.route(key.flavour(), &newest.repository.full_name);
        // The newest snapshot's build: the stored statuses of its commit (read for the newest
        // snapshot's commit) and this batch's.
        let commit = newest.source_commit.as_deref().map(str::to_ascii_lowercase);
        let batch_builds = statuses.iter().filter(|s| {
            commit
                .as_deref()
                .is_some_and(|c| !c.is_empty() && s.commit_hash.to_ascii_lowercase().starts_with(c))
        });
        let stored_builds = builds.get(&stored_key).map(Vec::as_slice).unwrap_or(&[]);
        let build = combine(
            stored_builds
                .iter()
                .map(|(s, on)| (*s, on))
                .chain(batch_builds.map(|s| (s.state, &s.updated_on))),
        );
        let ctx = FoldContext {
            required_approvals: routing
                .required_approvals(key.flavour(), &newest.repository.full_name),
            approvals_after_last_push: route.is_some_and(|r| r.approvals_after_last_push),
            build,
        };
        let before = facts.remove(&stored_key);
        let stored_requests = requests.remove(&stored_key).unwrap_or_default();
        let Some(folded) = fold(before, &stored_requests, &snapshots, &ctx) else {
            continue;
        };
        if let Some(s) = folded.first_review_seconds {
            points.push(FlowPoint::FirstReview(s));
        }
        if let Some(s) = folded.merge_seconds {
            points.push(FlowPoint::Merged(s));
        }
        fact_rows.push(FactsRow::from_state(folded.state));
        span_rows.extend(folded.spans);
        request_rows.extend(folded.requests);
    }
    super::write_json(out.0, &fact_rows)?;
    let spans: Vec<SpanRow> = span_rows
        .iter()
        .map(|s| SpanRow {
            repository_key: s.repository.as_str(),
            number: s.number,
            turn: &s.turn,
            since: &s.since,
            until: s.until.as_ref(),
        })
        .collect();
    super::write_json(out.1, &spans)?;
    let rows: Vec<RequestRow> = request_rows
        .iter()
        .map(|r| RequestRow {
            repository_key: r.repository.as_str(),
            number: r.number,
            reviewer: r.reviewer.as_str(),
            reviewer_name: &r.reviewer_name,
            asked_on: &r.asked_on,
            reviewed_on: r.reviewed_on.as_ref(),
        })
        .collect();
    super::write_json(out.2, &rows)?;
    Ok(points)
}
