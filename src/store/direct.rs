//! Direct messages (issue 24): what each person changed for themselves (`direct_preferences`,
//! `direct_mutes`), the durable queue of messages to one person (`direct_outbox`, the outbox's
//! life with a recipient instead of a room) and the Slack users found by e-mail
//! (`slack_users`).

use std::collections::HashMap;

use anyhow::Context;

use super::on_pool;
use super::outbox::{Attempt, OutboxState};
use super::Db;
use crate::domain::{RepositoryKey, Timestamp};

/// What a person set with `/reviews dm|remind|away`; `None` keeps the file's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Preferences {
    /// `on` or `off` (`/reviews dm on|off`).
    pub dm: Option<String>,
    /// Local times, comma-separated: `09:30,14:00` (`/reviews remind`); empty: none.
    pub remind_at: Option<String>,
    /// `YYYY-MM-DD` (`/reviews away until`); empty: back.
    pub away_until: Option<String>,
}

/// Every person's own settings, by their `[[users]] bitbucket` name.
pub async fn preferences(db: &Db) -> anyhow::Result<HashMap<String, Preferences>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        person: String,
        dm: Option<String>,
        remind_at: Option<String>,
        away_until: Option<String>,
    }
    let rows: Vec<Row> = on_pool!(db, pool => sqlx::query_as(
        "SELECT person, dm, remind_at, away_until FROM direct_preferences",
    )
    .fetch_all(pool)
    .await)
    .context("reading the direct-message preferences")?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.person,
                Preferences {
                    dm: r.dm,
                    remind_at: r.remind_at,
                    away_until: r.away_until,
                },
            )
        })
        .collect())
}

/// One of a person's own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// `dm`: `on` or `off`.
    Dm,
    /// `remind_at`: comma-separated `HH:MM`, or empty for none.
    RemindAt,
    /// `away_until`: `YYYY-MM-DD`, or empty for back.
    AwayUntil,
}

/// Sets `person`'s `which` to `value` at `now` (the other settings are kept).
pub async fn set(
    db: &Db,
    person: &str,
    which: Preference,
    value: &str,
    now: &Timestamp,
) -> anyhow::Result<()> {
    let column = match which {
        Preference::Dm => "dm",
        Preference::RemindAt => "remind_at",
        Preference::AwayUntil => "away_until",
    };
    let sql = format!(
        "INSERT INTO direct_preferences (person, {column}, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (person) DO UPDATE SET {column} = excluded.{column}, \
         updated_at = excluded.updated_at"
    );
    on_pool!(db, pool => sqlx::query(&sql)
        .bind(person)
        .bind(value)
        .bind(now.as_str())
        .execute(pool)
        .await.map(|_| ()))
    .context("storing a direct-message preference")
}

/// Mutes a PR for `person`'s direct messages; false if it already was.
pub async fn mute(
    db: &Db,
    person: &str,
    repository: &RepositoryKey,
    number: i64,
    now: &Timestamp,
) -> anyhow::Result<bool> {
    let added = on_pool!(db, pool => sqlx::query(
        "INSERT INTO direct_mutes (person, repository_key, number, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(person)
    .bind(repository.as_str())
    .bind(number)
    .bind(now.as_str())
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("muting a pull request")?;
    Ok(added == 1)
}

/// Unmutes a PR for `person`; false if it was not muted.
pub async fn unmute(
    db: &Db,
    person: &str,
    repository: &RepositoryKey,
    number: i64,
) -> anyhow::Result<bool> {
    let removed = on_pool!(db, pool => sqlx::query(
        "DELETE FROM direct_mutes WHERE person = $1 AND repository_key = $2 AND number = $3",
    )
    .bind(person)
    .bind(repository.as_str())
    .bind(number)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("unmuting a pull request")?;
    Ok(removed == 1)
}

/// The PRs `person` muted: (repository_key, number).
pub async fn mutes(db: &Db, person: &str) -> anyhow::Result<Vec<(String, i64)>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT repository_key, number FROM direct_mutes WHERE person = $1 \
         ORDER BY repository_key, number",
    )
    .bind(person)
    .fetch_all(pool)
    .await)
    .context("reading muted pull requests")
}

/// What a direct message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectKind {
    /// The person's queue at their hour (`pr-reminder remind`).
    Queue,
    /// News of one PR for the person who must act.
    News,
}

impl DirectKind {
    fn as_str(self) -> &'static str {
        match self {
            DirectKind::Queue => "queue",
            DirectKind::News => "news",
        }
    }
}

/// A direct message to queue.
#[derive(Debug, Clone)]
pub struct NewDirect<'a> {
    /// `slack`, `hipchat`, `mattermost` or `teams`.
    pub chat: &'a str,
    /// The recipient's `[[users]] bitbucket` name.
    pub person: &'a str,
    /// A queue or a PR's news.
    pub kind: DirectKind,
    /// News: the PR (repository_key, number).
    pub pull_request: Option<(&'a str, i64)>,
    /// A queue at its hour: `queue|person|due instant`, so that it is queued once.
    pub dedupe: Option<String>,
    /// The chat document (`notify::doc::Doc`) as JSON.
    pub payload: String,
    /// When it was queued.
    pub created_at: &'a Timestamp,
    /// When it may be sent (the end of the coalescing window, or the person's next working
    /// hour).
    pub not_before: &'a Timestamp,
}

/// Queues a direct message; false when its `dedupe` key was queued before (nothing added). News
/// of a PR still waiting for the same person joins that message instead (its document replaced,
/// its window kept): at most one message per person per PR per window.
pub async fn queue(db: &Db, message: &NewDirect<'_>) -> anyhow::Result<bool> {
    let (repository, number) = message.pull_request.unzip();
    let sql = match message.kind {
        DirectKind::Queue => {
            "INSERT INTO direct_outbox (chat, person, kind, repository_key, number, dedupe, \
             payload, created_at, not_before) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (dedupe) DO NOTHING"
        }
        DirectKind::News => {
            "INSERT INTO direct_outbox (chat, person, kind, repository_key, number, dedupe, \
             payload, created_at, not_before) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (person, repository_key, number) WHERE state = 'pending' AND kind = 'news' \
             DO UPDATE SET payload = excluded.payload, chat = excluded.chat"
        }
    };
    let added = on_pool!(db, pool => sqlx::query(sql)
        .bind(message.chat)
        .bind(message.person)
        .bind(message.kind.as_str())
        .bind(repository)
        .bind(number)
        .bind(message.dedupe.as_deref())
        .bind(&message.payload)
        .bind(message.created_at.as_str())
        .bind(message.not_before.as_str())
        .execute(pool)
        .await.map(|r| r.rows_affected()))
    .context("queueing a direct message")?;
    Ok(added == 1)
}

/// One `direct_outbox` row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DirectRow {
    /// `direct_outbox.id`.
    pub id: i64,
    /// `slack`, `hipchat`, `mattermost` or `teams`.
    pub chat: String,
    /// The recipient's `[[users]] bitbucket` name.
    pub person: String,
    /// `queue` or `news`.
    pub kind: String,
    /// The chat document as JSON.
    pub payload: String,
    /// `pending`, `retrying`, `sending`, `sent` or `failed`.
    pub state: String,
    /// When it may be sent next.
    pub not_before: String,
    /// Sending attempts so far.
    pub attempts: i64,
    /// When its first attempt failed.
    pub first_failed_at: Option<String>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

const SELECT: &str = "SELECT id, chat, person, kind, payload, state, not_before, attempts, \
    first_failed_at, last_error FROM direct_outbox";

/// The oldest message for `chat` that is due at `now` (pending or retrying, `not_before`
/// passed). A message waiting for its retry does not hold up those to other people.
pub async fn next_due(db: &Db, chat: &str, now: &Timestamp) -> anyhow::Result<Option<DirectRow>> {
    on_pool!(db, pool => sqlx::query_as(&format!(
        "{SELECT} WHERE chat = $1 AND state IN ('pending', 'retrying') AND not_before <= $2 \
         ORDER BY not_before, id LIMIT 1"
    ))
    .bind(chat)
    .bind(now.as_str())
    .fetch_optional(pool)
    .await)
    .context("reading the direct messages")
}

/// When the next message for `chat` becomes due, if one waits.
pub async fn next_not_before(db: &Db, chat: &str) -> anyhow::Result<Option<Timestamp>> {
    let at: Option<String> = on_pool!(db, pool => sqlx::query_scalar(
        "SELECT min(not_before) FROM direct_outbox WHERE chat = $1 \
         AND state IN ('pending', 'retrying')",
    )
    .bind(chat)
    .fetch_one(pool)
    .await)
    .context("reading the direct messages")?;
    Ok(at.and_then(|t| Timestamp::parse(&t).ok()))
}

/// Every row, newest first (at most `limit`): for `outbox list`-like views and tests.
pub async fn list(db: &Db, limit: i64) -> anyhow::Result<Vec<DirectRow>> {
    on_pool!(db, pool => sqlx::query_as(&format!("{SELECT} ORDER BY id DESC LIMIT $1"))
        .bind(limit)
        .fetch_all(pool)
        .await)
    .context("listing the direct messages")
}

/// Claims a row for sending; false if another claimed it first.
pub async fn claim(db: &Db, id: i64) -> anyhow::Result<bool> {
    let claimed = on_pool!(db, pool => sqlx::query(
        "UPDATE direct_outbox SET state = 'sending' WHERE id = $1 \
         AND state IN ('pending', 'retrying')",
    )
    .bind(id)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("claiming a direct message")?;
    Ok(claimed == 1)
}

/// Rows that were being sent when the process died go back in the queue (at-least-once).
pub async fn recover_in_flight(db: &Db) -> anyhow::Result<u64> {
    on_pool!(db, pool => sqlx::query(
        "UPDATE direct_outbox SET state = 'retrying' WHERE state = 'sending'",
    )
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("recovering direct messages in flight")
}

/// Records an attempt at a claimed row at `now`, as `outbox::finish` does for a room's.
pub async fn finish(db: &Db, id: i64, attempt: Attempt<'_>, now: &Timestamp) -> anyhow::Result<()> {
    let (state, not_before, error, message) = match &attempt {
        Attempt::Sent { message } => (OutboxState::Sent, None, None, Some(*message)),
        Attempt::Retry { next, error } => (OutboxState::Retrying, Some(next), Some(*error), None),
        Attempt::Failed { error, message } => (OutboxState::Failed, None, Some(*error), *message),
    };
    on_pool!(db, pool => sqlx::query(
        "UPDATE direct_outbox SET state = $2, attempts = attempts + 1, \
         not_before = coalesce($3, not_before), last_error = $4, \
         sent_at = CASE WHEN $2 = 'sent' THEN $5 END, message = coalesce($6, message), \
         first_failed_at = CASE WHEN $2 = 'sent' THEN first_failed_at \
                                ELSE coalesce(first_failed_at, $5) END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(not_before.map(Timestamp::as_str))
    .bind(error)
    .bind(now.as_str())
    .bind(message)
    .execute(pool)
    .await.map(|_| ()))
    .context("updating a direct message")
}

/// A Slack user found by e-mail: (user id, time zone).
pub async fn slack_user(db: &Db, email: &str) -> anyhow::Result<Option<(String, Option<String>)>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT user_id, tz FROM slack_users WHERE email = $1",
    )
    .bind(email.trim().to_lowercase())
    .fetch_optional(pool)
    .await)
    .context("reading the Slack users")
}

/// Every Slack user found by e-mail: e-mail (lower-case) to time zone.
pub async fn slack_zones(db: &Db) -> anyhow::Result<HashMap<String, String>> {
    let rows: Vec<(String, Option<String>)> = on_pool!(db, pool => sqlx::query_as(
        "SELECT email, tz FROM slack_users",
    )
    .fetch_all(pool)
    .await)
    .context("reading the Slack users")?;
    Ok(rows
        .into_iter()
        .filter_map(|(email, tz)| Some((email, tz?)))
        .collect())
}

/// Remembers what `users.lookupByEmail` answered for `email`.
pub async fn remember_slack_user(
    db: &Db,
    email: &str,
    user_id: &str,
    tz: Option<&str>,
    now: &Timestamp,
) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "INSERT INTO slack_users (email, user_id, tz, looked_up_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (email) DO UPDATE SET user_id = excluded.user_id, tz = excluded.tz, \
         looked_up_at = excluded.looked_up_at",
    )
    .bind(email.trim().to_lowercase())
    .bind(user_id)
    .bind(tz)
    .bind(now.as_str())
    .execute(pool)
    .await.map(|_| ()))
    .context("remembering a Slack user")
}

/// When `person`'s turns were last looked at (`None`: never: the next look is their baseline).
pub async fn looked_at(db: &Db, person: &str) -> anyhow::Result<Option<String>> {
    on_pool!(db, pool => sqlx::query_scalar(
        "SELECT looked_at FROM direct_watch WHERE person = $1",
    )
    .bind(person)
    .fetch_optional(pool)
    .await)
    .context("reading the direct-message watch")
}

/// Records a look at `person`'s turns at `now`.
pub async fn looked(db: &Db, person: &str, now: &Timestamp) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "INSERT INTO direct_watch (person, looked_at) VALUES ($1, $2) \
         ON CONFLICT (person) DO UPDATE SET looked_at = excluded.looked_at",
    )
    .bind(person)
    .bind(now.as_str())
    .execute(pool)
    .await.map(|_| ()))
    .context("recording the direct-message watch")
}

/// A turn a person was told of (or saw at their baseline).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SeenTurn {
    /// The PR's repository.
    pub repository_key: String,
    /// The PR's number.
    pub number: i64,
    /// `review`, `merge`, `changes_requested`, `build_failed`, ...
    pub turn: String,
    /// The turn's start when seen.
    pub since: Option<String>,
}

/// The turns `person` was last seen to have.
pub async fn seen_turns(db: &Db, person: &str) -> anyhow::Result<Vec<SeenTurn>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT repository_key, number, turn, since FROM direct_turns WHERE person = $1",
    )
    .bind(person)
    .fetch_all(pool)
    .await)
    .context("reading the turns seen")
}

/// Records that `person` has `turn` on a PR (replacing what was seen of it).
pub async fn see_turn(
    db: &Db,
    person: &str,
    turn: &SeenTurn,
    now: &Timestamp,
) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "INSERT INTO direct_turns (person, repository_key, number, turn, since, seen_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (person, repository_key, number) \
         DO UPDATE SET turn = excluded.turn, since = excluded.since, seen_at = excluded.seen_at",
    )
    .bind(person)
    .bind(&turn.repository_key)
    .bind(turn.number)
    .bind(&turn.turn)
    .bind(turn.since.as_deref())
    .bind(now.as_str())
    .execute(pool)
    .await.map(|_| ()))
    .context("recording a turn seen")
}

/// Forgets that `person` had a turn on a PR (it is no longer theirs).
pub async fn forget_turn(
    db: &Db,
    person: &str,
    repository_key: &str,
    number: i64,
) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "DELETE FROM direct_turns WHERE person = $1 AND repository_key = $2 AND number = $3",
    )
    .bind(person)
    .bind(repository_key)
    .bind(number)
    .execute(pool)
    .await.map(|_| ()))
    .context("forgetting a turn")
}

/// When `user_key` last took part in the PR (Bitbucket's `participated_on`, as stored in
/// `reviews.state_on`), if they did.
pub async fn participated_on(
    db: &Db,
    user_key: &str,
    repository_key: &str,
    number: i64,
) -> anyhow::Result<Option<String>> {
    let at: Option<Option<String>> = on_pool!(db, pool => sqlx::query_scalar(
        "SELECT state_on FROM reviews WHERE repository_key = $1 AND number = $2 AND user_key = $3",
    )
    .bind(repository_key)
    .bind(number)
    .bind(user_key)
    .fetch_optional(pool)
    .await)
    .context("reading a participation")?;
    Ok(at.flatten())
}

/// Withdraws `person`'s news of a PR still waiting in its window (the PR is no longer theirs to
/// act on: it would tell of a state that is gone). Returns how many were withdrawn.
pub async fn withdraw_news(
    db: &Db,
    person: &str,
    repository_key: &str,
    number: i64,
) -> anyhow::Result<u64> {
    on_pool!(db, pool => sqlx::query(
        "DELETE FROM direct_outbox WHERE person = $1 AND repository_key = $2 AND number = $3 \
         AND kind = 'news' AND state = 'pending'",
    )
    .bind(person)
    .bind(repository_key)
    .bind(number)
    .execute(pool)
    .await.map(|r| r.rows_affected()))
    .context("withdrawing a direct message")
}
