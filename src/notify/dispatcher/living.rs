//! Living messages: a room through the Slack Web API (`Sink::SlackApi`) keeps one message per
//! PR. The first news of a PR is posted (`chat.postMessage`) and its `ts` stored
//! (`store::chat_messages`); every later news edits that message to the PR's current state
//! (`chat.update`) and says what changed in a short reply in its thread (`thread_ts`). A merged
//! or declined PR gets its final edit and never a new top-level message. A message deleted in
//! Slack is posted again.
//!
//! Crash safety: before `chat.postMessage` the row is marked "being posted" (`ts` NULL), and the
//! message carries a key naming the room and the PR in its metadata. When the next attempt finds
//! the mark (a crash or a timeout came between the post and storing its `ts`), it looks the
//! message up by that key (`conversations.history` with `include_all_metadata`) and edits what
//! it finds rather than posting a second one. Slack's answer to a refused post (`ok: false`)
//! means nothing was posted: the mark is dropped then.

use super::*;
use crate::domain::RepositoryKey;
use crate::notify::doc::Block;
use crate::notify::slack_api::{self, Api};
use crate::store::chat_messages;

/// How far before a post in flight began a lookup reads the channel: the chat's clock and ours
/// may differ by this much.
const LOOKUP_MARGIN: chrono::Duration = chrono::Duration::minutes(10);

/// The key a room's message about one PR carries in its metadata: the room and the PR's lasting
/// identity (repository key and number), so that a rename keeps it and two rooms posting to one
/// channel keep one message each.
pub fn message_key(room: &str, repository: &RepositoryKey, number: i64) -> String {
    format!("{room}|{repository}#{number}")
}

/// What changed, for the thread reply: the news' headline (`Ready to merge`, `Build failed`,
/// `Merged`), as a message of its own.
fn what_changed(message: &Doc) -> Doc {
    let headline = message.blocks.iter().find_map(|b| match b {
        Block::News(news) => Some(news.headline.as_str()),
        _ => None,
    });
    Doc::lines(message.color, headline)
}

impl RoomWorker {
    /// Delivers a PR's news to a Web-API room as its living message: an edit of the message
    /// about the PR (and a reply in its thread), or a new message when there is none. `Ok(Err)`
    /// is the chat's refusal, for `not_delivered`; `Err` is our own trouble (the database).
    pub(super) async fn deliver_living(
        &self,
        row: &OutboxRow,
        repository: &RepositoryKey,
        number: i64,
        message: &Doc,
        limiter: Option<&RoomLimiter>,
    ) -> anyhow::Result<Result<(), SendError>> {
        let Sink::SlackApi {
            channel,
            api_url,
            token,
        } = &self.room.sink
        else {
            anyhow::bail!("not a Web-API room");
        };
        let api = Api::new(&self.client, api_url, token, &self.slack);
        let room = self.room.name.as_str();
        let key = message_key(room, repository, number);
        let events = parse_events(&row.events);
        let closed =
            events.contains(&NotifyEvent::Merged) || events.contains(&NotifyEvent::Declined);
        // The permit `deliver` took covers the first request; each further one takes its own.
        let mut requests = 0;

        // A message in another channel (the room's `slack_channel` changed) is left there: the
        // PR gets a new one in the room's channel.
        let stored = chat_messages::get(&self.db, room, repository, number)
            .await?
            .filter(|m| m.channel == *channel);
        let mut target = None;
        // Whether the message to edit is one a cut-short post made (of this news, as a rule: the
        // row is tried again or recovered at start): the edit is then the news, with no reply.
        let mut adopted = false;
        if let Some(stored) = stored {
            match (stored.ts, stored.posting_since) {
                (Some(ts), _) => target = Some((stored.channel, ts)),
                (None, since) => {
                    // A post whose answer never came: find it by its key before posting again.
                    let since = since
                        .as_deref()
                        .and_then(|t| Timestamp::parse(t).ok())
                        .map_or_else(|| self.clock.now(), |t| t.to_datetime());
                    let oldest = (since - LOOKUP_MARGIN).timestamp().max(0).to_string();
                    if !self.next_request(&mut requests, limiter).await {
                        return Ok(Err(lease_lost()));
                    }
                    match api.find(&stored.channel, &oldest, &key).await {
                        Ok(Some(ts)) => {
                            tracing::warn!(%ts, "found the message a cut-short post made; editing it");
                            chat_messages::posted(
                                &self.db,
                                room,
                                repository,
                                number,
                                &stored.channel,
                                &ts,
                                &self.clock.timestamp(),
                            )
                            .await?;
                            target = Some((stored.channel, ts));
                            adopted = true;
                        }
                        Ok(None) => {}
                        Err(err) if err.refused() => {
                            // Cannot look (no `channels:history` scope, say): posting again may
                            // make a second message, which beats never posting again.
                            let err = err.into_send_error("conversations.history");
                            tracing::warn!(
                                reason = err.reason(),
                                "cannot look up a cut-short post; posting anew"
                            );
                        }
                        Err(err) => return Ok(Err(err.into_send_error("conversations.history"))),
                    }
                }
            }
        }

        if let Some((channel, ts)) = target {
            if !self.next_request(&mut requests, limiter).await {
                return Ok(Err(lease_lost()));
            }
            match api
                .call("chat.update", &slack_api::update(&channel, &ts, message))
                .await
            {
                Ok(_) => {
                    chat_messages::edited(
                        &self.db,
                        room,
                        repository,
                        number,
                        &self.clock.timestamp(),
                    )
                    .await?;
                    if adopted {
                        // The message is this news itself: no reply needed.
                        return Ok(Ok(()));
                    }
                    if !self.next_request(&mut requests, limiter).await {
                        return Ok(Err(lease_lost()));
                    }
                    // The edit is what the row promised; the reply under it is best effort,
                    // as the digest's "superseded" edit is: retrying the row would edit again
                    // and could post the reply twice.
                    let reply = slack_api::reply(&channel, &ts, &what_changed(message));
                    if let Err(err) = api.call("chat.postMessage", &reply).await {
                        let err = err.into_send_error("chat.postMessage");
                        tracing::warn!(reason = err.reason(), "thread reply not posted");
                    }
                    return Ok(Ok(()));
                }
                Err(err) if err.message_gone() && !closed => {
                    tracing::warn!(
                        error = err.error().unwrap_or_default(),
                        "the PR's message is gone from the channel; posting a new one"
                    );
                }
                Err(err) if err.message_gone() => {
                    // Merged or declined: nothing more will be said about it.
                    tracing::info!(
                        "the closed PR's message is gone from the channel; nothing to edit"
                    );
                    return Ok(Ok(()));
                }
                Err(err) => return Ok(Err(err.into_send_error("chat.update"))),
            }
        } else if closed {
            // No message to give its final edit: a closed PR gets no new top-level message.
            tracing::info!("a closed PR without a message in this room; nothing posted");
            return Ok(Ok(()));
        }

        chat_messages::posting(
            &self.db,
            room,
            repository,
            number,
            channel,
            &self.clock.timestamp(),
        )
        .await?;
        if !self.next_request(&mut requests, limiter).await {
            chat_messages::not_posted(&self.db, room, repository, number).await?;
            return Ok(Err(lease_lost()));
        }
        let body = slack_api::new_message(channel, message, &key);
        match api.post_message(&body).await {
            Ok(posted) => {
                chat_messages::posted(
                    &self.db,
                    room,
                    repository,
                    number,
                    &posted.channel,
                    &posted.ts,
                    &self.clock.timestamp(),
                )
                .await?;
                Ok(Ok(()))
            }
            Err(err) => {
                if err.refused() {
                    chat_messages::not_posted(&self.db, room, repository, number).await?;
                }
                Ok(Err(err.into_send_error("chat.postMessage")))
            }
        }
    }

    /// A digest to a Web-API room: posted as a new message (`chat.postMessage`), as in any
    /// room; then the room's previous digest is edited to one line saying this one superseded
    /// it, so the channel holds one current list. The digest counts as delivered once posted:
    /// an edit that does not go through (the old digest deleted, say) is only logged.
    pub(super) async fn deliver_living_digest(
        &self,
        message: &Doc,
        limiter: Option<&RoomLimiter>,
    ) -> anyhow::Result<Result<(), SendError>> {
        let Sink::SlackApi {
            channel,
            api_url,
            token,
        } = &self.room.sink
        else {
            anyhow::bail!("not a Web-API room");
        };
        let api = Api::new(&self.client, api_url, token, &self.slack);
        let posted = match api
            .post_message(&slack_api::message(channel, message))
            .await
        {
            Ok(posted) => posted,
            Err(err) => return Ok(Err(err.into_send_error("chat.postMessage"))),
        };
        let previous = chat_messages::digest_posted(
            &self.db,
            &self.room.name,
            &posted.channel,
            &posted.ts,
            &self.clock.timestamp(),
        )
        .await?;
        let Some(previous) = previous.filter(|p| p.ts != posted.ts) else {
            return Ok(Ok(()));
        };
        if !self.ready_to_send(limiter).await {
            return Ok(Ok(()));
        }
        let body = slack_api::superseded(&previous.channel, &previous.ts, &posted.ts);
        if let Err(err) = api.call("chat.update", &body).await {
            let err = err.into_send_error("chat.update");
            tracing::warn!(
                reason = err.reason(),
                "the previous digest was not marked superseded"
            );
        }
        Ok(Ok(()))
    }

    /// Before each Web API request: the first goes on the permit `deliver` took; each further
    /// one waits for its own within the room's rate. `false` when the room's lease was lost.
    async fn next_request(&self, requests: &mut u32, limiter: Option<&RoomLimiter>) -> bool {
        *requests += 1;
        *requests == 1 || self.ready_to_send(limiter).await
    }
}

/// Another replica took the room mid-way: the row is tried again (edits are idempotent).
fn lease_lost() -> SendError {
    SendError::Retry {
        after: None,
        reason: "another replica took the room's lease".into(),
    }
}
