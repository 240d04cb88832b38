//! `chat_messages`: the one message a room keeps per pull request where it can edit it (a room
//! through the Slack Web API): its channel and `ts`, or, while it is being posted, since when.
//! `chat_digests`: such a room's latest digest, edited to "superseded" by the next.

use anyhow::Context;

use super::on_pool;
use super::Db;
use crate::domain::{RepositoryKey, Timestamp};

/// A room's message about one PR.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChatMessage {
    /// The channel ID the chat answered (`C0123...`).
    pub channel: String,
    /// The message's `ts` (Slack's message id); `None` while a post is in flight or was cut
    /// short (a crash, a timeout): the message may exist without us knowing its `ts`.
    pub ts: Option<String>,
    /// When the post in flight began (`None` once posted).
    pub posting_since: Option<String>,
    /// When the message was posted.
    pub created_at: String,
    /// When it was last edited.
    pub edited_at: Option<String>,
    /// What it showed when last posted or edited: the caller's JSON (`None` before it was
    /// kept, or while being posted).
    pub shown: Option<String>,
}

/// The message `room` keeps about PR `number` of `repository`, if any.
pub async fn get(
    db: &Db,
    room: &str,
    repository: &RepositoryKey,
    number: i64,
) -> anyhow::Result<Option<ChatMessage>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT channel, ts, posting_since, created_at, edited_at, shown FROM chat_messages
          WHERE room = $1 AND repository_key = $2 AND number = $3",
    )
    .bind(room)
    .bind(repository.as_str())
    .bind(number)
    .fetch_optional(pool)
    .await)
    .context("reading a room's message about a pull request")
}

/// Records, before `chat.postMessage`, that a message about the PR is being posted to `channel`
/// (its `ts` unknown until the answer): a crash before `posted` leaves this for the next
/// attempt to look the message up rather than post a second one. Replaces what was recorded
/// (a message deleted in the chat is replaced by the new one).
pub async fn posting(
    db: &Db,
    room: &str,
    repository: &RepositoryKey,
    number: i64,
    channel: &str,
    now: &Timestamp,
) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "INSERT INTO chat_messages
                (room, repository_key, number, channel, ts, posting_since, created_at, edited_at)
         VALUES ($1, $2, $3, $4, NULL, $5, $5, NULL)
         ON CONFLICT (room, repository_key, number) DO UPDATE SET
            channel = excluded.channel, ts = NULL, posting_since = excluded.posting_since,
            created_at = excluded.created_at, edited_at = NULL, shown = NULL",
    )
    .bind(room)
    .bind(repository.as_str())
    .bind(number)
    .bind(channel)
    .bind(now.as_str())
    .execute(pool)
    .await
    .map(|_| ()))
    .context("recording a message being posted")
}

/// Records the message the chat posted (or that a lookup found): its channel and `ts`, and
/// what it shows (`shown`, the caller's JSON).
#[allow(clippy::too_many_arguments)]
pub async fn posted(
    db: &Db,
    room: &str,
    repository: &RepositoryKey,
    number: i64,
    channel: &str,
    ts: &str,
    shown: &str,
    now: &Timestamp,
) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "INSERT INTO chat_messages (room, repository_key, number, channel, ts, posting_since,
                                    created_at, edited_at, shown)
         VALUES ($1, $2, $3, $4, $5, NULL, $6, NULL, $7)
         ON CONFLICT (room, repository_key, number) DO UPDATE SET
            channel = excluded.channel, ts = excluded.ts, posting_since = NULL,
            shown = excluded.shown",
    )
    .bind(room)
    .bind(repository.as_str())
    .bind(number)
    .bind(channel)
    .bind(ts)
    .bind(now.as_str())
    .bind(shown)
    .execute(pool)
    .await
    .map(|_| ()))
    .context("recording a posted message")
}

/// Forgets a post in flight that the chat refused (it said so: nothing was posted).
pub async fn not_posted(
    db: &Db,
    room: &str,
    repository: &RepositoryKey,
    number: i64,
) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "DELETE FROM chat_messages
          WHERE room = $1 AND repository_key = $2 AND number = $3 AND ts IS NULL",
    )
    .bind(room)
    .bind(repository.as_str())
    .bind(number)
    .execute(pool)
    .await
    .map(|_| ()))
    .context("forgetting a refused post")
}

/// Records that the message was edited `now` to show `shown` (the caller's JSON).
pub async fn edited(
    db: &Db,
    room: &str,
    repository: &RepositoryKey,
    number: i64,
    shown: &str,
    now: &Timestamp,
) -> anyhow::Result<()> {
    on_pool!(db, pool => sqlx::query(
        "UPDATE chat_messages SET edited_at = $4, shown = $5
          WHERE room = $1 AND repository_key = $2 AND number = $3",
    )
    .bind(room)
    .bind(repository.as_str())
    .bind(number)
    .bind(now.as_str())
    .bind(shown)
    .execute(pool)
    .await
    .map(|_| ()))
    .context("recording an edited message")
}

/// What a living message says about a PR beyond its review state: where it stands in
/// Bitbucket (`pull_requests.state`, `draft`) and its source commit.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PrFacts {
    /// `OPEN`, `MERGED`, `DECLINED`, `SUPERSEDED` or `DELETED`.
    pub state: String,
    /// Bitbucket's draft flag.
    pub draft: bool,
    /// The source commit, as Bitbucket gave it (lower case compared).
    pub source_commit: Option<String>,
}

/// The stored state, draft flag and source commit of PR `number` of `repository`.
pub async fn pr_facts(
    db: &Db,
    repository: &RepositoryKey,
    number: i64,
) -> anyhow::Result<Option<PrFacts>> {
    on_pool!(db, pool => sqlx::query_as(
        "SELECT state, draft, lower(source_commit) AS source_commit FROM pull_requests
          WHERE repository_key = $1 AND number = $2",
    )
    .bind(repository.as_str())
    .bind(number)
    .fetch_optional(pool)
    .await)
    .context("reading a pull request's state for its message")
}

/// A room's latest digest: its channel and `ts`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChatDigest {
    /// The channel ID the chat answered.
    pub channel: String,
    /// The digest message's `ts`.
    pub ts: String,
}

/// Records `channel`/`ts` as `room`'s latest digest; answers the one it replaces, if any.
pub async fn digest_posted(
    db: &Db,
    room: &str,
    channel: &str,
    ts: &str,
    now: &Timestamp,
) -> anyhow::Result<Option<ChatDigest>> {
    let previous: Option<ChatDigest> = on_pool!(db, pool => sqlx::query_as(
        "SELECT channel, ts FROM chat_digests WHERE room = $1",
    )
    .bind(room)
    .fetch_optional(pool)
    .await)
    .context("reading a room's latest digest")?;
    on_pool!(db, pool => sqlx::query(
        "INSERT INTO chat_digests (room, channel, ts, posted_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (room) DO UPDATE SET
            channel = excluded.channel, ts = excluded.ts, posted_at = excluded.posted_at",
    )
    .bind(room)
    .bind(channel)
    .bind(ts)
    .bind(now.as_str())
    .execute(pool)
    .await
    .map(|_| ()))
    .context("recording a room's latest digest")?;
    Ok(previous)
}
