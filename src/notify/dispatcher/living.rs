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
//!
//! What changed: each message is stored with what it showed ([`Shown`]: the PR's state, draft
//! flag, source commit, approvals, requests for changes, build and turn), and the reply under
//! the next edit compares that with the PR now (`changes`): "Bob approved", "Changes requested
//! by Carol", "Build failed", "New commits", "Merged". Where the turn moves to someone `[[users]]`
//! maps to a Slack member, the reply names them (a mention) and is also shown in the channel
//! (`reply_broadcast`), since it asks them to act.
//!
//! The end of a PR: merged, declined, deleted (Data Center), superseded (Cloud) or moved back to
//! draft, the message gets an edit showing so (the title struck through, unless it is a draft)
//! and never a new top-level message.

use serde::{Deserialize, Serialize};

use super::*;
use crate::domain::{BuildState, PullRequestView, RepositoryKey, Reviewer, Turn};
use crate::notify::doc::{clip, Block, Color, Inline, Person};
use crate::notify::slack_api::{self, Api};
use crate::store::chat_messages::{self, PrFacts};

/// How far before a post in flight began a lookup reads the channel: the chat's clock and ours
/// may differ by this much.
const LOOKUP_MARGIN: chrono::Duration = chrono::Duration::minutes(10);

/// The key a room's message about one PR carries in its metadata: the room and the PR's lasting
/// identity (repository key and number), so that a rename keeps it and two rooms posting to one
/// channel keep one message each.
pub fn message_key(room: &str, repository: &RepositoryKey, number: i64) -> String {
    format!("{room}|{repository}#{number}")
}

/// What a living message showed when it was last posted or edited, as the facts a reply
/// compares (`chat_messages.shown`, as JSON). Names are display names, as the message shows
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    /// `OPEN`, `MERGED`, `DECLINED`, `SUPERSEDED`, `DELETED` (`pull_requests.state`).
    pub state: String,
    /// Bitbucket's draft flag.
    pub draft: bool,
    /// The source commit (lower case), if known.
    pub commit: Option<String>,
    /// Who approved (approvals that count).
    pub approved_by: Vec<String>,
    /// Who asked for changes (standing requests).
    pub changes_requested_by: Vec<String>,
    /// The combined build state (`SUCCESSFUL`, `FAILED`, `INPROGRESS`, `STOPPED`), if any.
    pub build: Option<String>,
    /// Whose turn (`author`, `reviewers`, `merge`; `Turn::label`), for an open PR.
    pub turn: Option<String>,
    /// Who must act: the owed reviewers, or the author.
    pub turn_people: Vec<String>,
}

impl Shown {
    /// What the message about `view` shows, with the PR's stored `facts`.
    pub fn of(view: &PullRequestView, facts: Option<&PrFacts>) -> Shown {
        Shown {
            state: facts.map_or_else(|| "OPEN".to_owned(), |f| f.state.clone()),
            draft: facts.is_some_and(|f| f.draft),
            commit: facts.and_then(|f| f.source_commit.clone()),
            approved_by: view.approved_by.clone(),
            changes_requested_by: view.changes_requested_by.clone(),
            build: view.build_state.map(|b| b.as_str().to_owned()),
            turn: view.turn.as_ref().map(|t| t.label().to_owned()),
            turn_people: turn_people(view).iter().map(|r| r.name.clone()).collect(),
        }
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn open(&self) -> bool {
        self.state == "OPEN" && !self.draft
    }
}

/// Who must act on `view`: the owed reviewers on the reviewers' turn, else the author.
fn turn_people(view: &PullRequestView) -> Vec<&Reviewer> {
    match view.turn {
        Some(Turn::Reviewers { .. }) => view.waiting_for.iter().collect(),
        Some(Turn::Author(_) | Turn::Merge) => vec![&view.author_as],
        None => Vec::new(),
    }
}

/// `Bob`, `Bob and Carol`, `Bob, Carol and Dee`.
fn and_list(names: &[&String]) -> String {
    let names: Vec<String> = names.iter().map(|n| clip(n)).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Those of `now` not in `before`, in order.
fn added<'a>(now: &'a [String], before: &[String]) -> Vec<&'a String> {
    now.iter().filter(|n| !before.contains(n)).collect()
}

/// What changed between what the message showed (`before`) and the PR now, in the order a
/// reader wants it: the PR's fate, its draft flag, new commits, verdicts, the build. Empty when
/// none of these changed.
pub fn changes(before: &Shown, now: &Shown) -> Vec<String> {
    let mut out = Vec::new();
    if now.state != before.state {
        out.push(
            match now.state.as_str() {
                "MERGED" => "Merged",
                "DECLINED" => "Declined",
                "DELETED" => "Deleted",
                "SUPERSEDED" => "Superseded",
                _ => "Reopened",
            }
            .to_owned(),
        );
    }
    if now.state == "OPEN" && now.draft != before.draft {
        out.push(
            if now.draft {
                "Moved back to draft"
            } else {
                "Ready for review"
            }
            .to_owned(),
        );
    }
    let pushed = matches!((&before.commit, &now.commit), (Some(b), Some(n)) if b != n);
    if pushed {
        out.push("New commits".to_owned());
    }
    let approved = added(&now.approved_by, &before.approved_by);
    if !approved.is_empty() {
        out.push(format!("{} approved", and_list(&approved)));
    }
    let unapproved = added(&before.approved_by, &now.approved_by);
    if !unapproved.is_empty() && !pushed {
        out.push(format!("Approval withdrawn by {}", and_list(&unapproved)));
    }
    let requested = added(&now.changes_requested_by, &before.changes_requested_by);
    if !requested.is_empty() {
        out.push(format!("Changes requested by {}", and_list(&requested)));
    }
    let withdrawn = added(&before.changes_requested_by, &now.changes_requested_by);
    if !withdrawn.is_empty() && !pushed {
        out.push(format!(
            "Request for changes withdrawn by {}",
            and_list(&withdrawn)
        ));
    }
    if now.build != before.build {
        let failed = Some(BuildState::Failed.as_str());
        match now.build.as_deref() {
            Some("FAILED") => out.push("Build failed".to_owned()),
            Some("SUCCESSFUL") if before.build.as_deref() == failed => {
                out.push("Build fixed".to_owned())
            }
            Some("SUCCESSFUL") => out.push("Build passed".to_owned()),
            Some("STOPPED") => out.push("Build stopped".to_owned()),
            _ => {}
        }
    }
    out
}

/// Whose turn it is now, as a reply ends: `Alice's turn`, `needs review from Bob, Carol`,
/// `ready to merge: Alice`; people as mentions where mapped.
fn turn_words(view: &PullRequestView) -> Vec<Inline> {
    let person = |r: &Reviewer| Inline::Person(Person::of(r, clip(&r.name)));
    let people = turn_people(view);
    let mut out = Vec::new();
    match view.turn {
        Some(Turn::Author(_)) => {
            out.push(person(&view.author_as));
            out.push(Inline::fixed("'s turn"));
        }
        Some(Turn::Merge) => {
            out.push(Inline::fixed("ready to merge: "));
            out.push(person(&view.author_as));
        }
        Some(Turn::Reviewers { .. }) if !people.is_empty() => {
            out.push(Inline::fixed("needs review from "));
            for (i, r) in people.into_iter().enumerate() {
                if i > 0 {
                    out.push(Inline::fixed(", "));
                }
                out.push(person(r));
            }
        }
        _ => {}
    }
    out
}

/// The reply under an edit: what changed (`changes`; the news' headline when nothing is known
/// of what the message showed before, or nothing listed changed) and, when the turn moved,
/// whose it is now. `true` with it when the turn moved to someone the reply mentions (mapped
/// to a Slack member), for `reply_broadcast`.
fn reply(
    before: Option<&Shown>,
    now: &Shown,
    view: &PullRequestView,
    message: &Doc,
) -> (Doc, bool) {
    let headline = message.blocks.iter().find_map(|b| match b {
        Block::News(news) => Some(news.headline.clone()),
        _ => None,
    });
    let said = before.map(|b| changes(b, now)).unwrap_or_default();
    let mut line = vec![Inline::text(if said.is_empty() {
        headline.unwrap_or_default()
    } else {
        said.join(" · ")
    })];
    let mut broadcast = false;
    if let Some(before) = before {
        let moved =
            now.open() && (now.turn != before.turn || now.turn_people != before.turn_people);
        let words = turn_words(view);
        if moved && !words.is_empty() {
            line.push(Inline::fixed(" · "));
            line.extend(words);
            broadcast = turn_people(view)
                .iter()
                .any(|r| r.slack.is_some() && !before.turn_people.contains(&r.name));
        }
    }
    let doc = Doc {
        color: message.color,
        notify: false,
        headline: None,
        blocks: vec![Block::Paragraph(line)],
        ping: Vec::new(),
    };
    (doc, broadcast)
}

/// How a PR that is no longer up for review is shown in its message, by its stored facts:
/// the headline and whether the title is struck through (it is over, unlike a draft). `None`
/// for an open, reviewable PR.
fn ended(facts: Option<&PrFacts>, events: &BTreeSet<NotifyEvent>) -> Option<(&'static str, bool)> {
    if events.contains(&NotifyEvent::Merged) {
        return Some(("Merged", true));
    }
    if events.contains(&NotifyEvent::Declined) {
        return Some(("Declined", true));
    }
    match facts.map(|f| (f.state.as_str(), f.draft)) {
        Some(("MERGED", _)) => Some(("Merged", true)),
        Some(("DECLINED", _)) => Some(("Declined", true)),
        Some(("DELETED", _)) => Some(("Deleted", true)),
        Some(("SUPERSEDED", _)) => Some(("Superseded", true)),
        Some(("OPEN", true)) if events.contains(&NotifyEvent::Withdrawn) => Some(("Draft", false)),
        // Reviewable again since (news of it came with the withdrawal).
        Some(("OPEN", _)) if events.contains(&NotifyEvent::Opened) => None,
        // A work-in-progress title (the route's ignore_title_patterns).
        _ if events.contains(&NotifyEvent::Withdrawn) => Some(("Work in progress", false)),
        _ => None,
    }
}

/// The message of a PR that is over (or back to draft): its news with `headline`, gray, no
/// one asked to act, the title struck through when `struck`.
fn final_message(view: &PullRequestView, headline: &'static str, struck: bool) -> Doc {
    let events = BTreeSet::from([NotifyEvent::Withdrawn]);
    let mut doc = render(&events, view);
    for block in &mut doc.blocks {
        if let Block::News(news) = block {
            news.headline = headline.to_owned();
            news.who.clear();
            if struck && !news.line.is_empty() {
                let title = news.line.remove(0);
                news.line.insert(0, Inline::Struck(vec![title]));
            }
        }
    }
    doc.color = Color::Gray;
    doc.notify = false;
    doc
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
        view: &PullRequestView,
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
        let facts = chat_messages::pr_facts(&self.db, repository, number).await?;
        let now = Shown::of(view, facts.as_ref());
        let shown = now.json();
        // Over (merged, declined, deleted) or back to draft: shown so, and never posted anew.
        let ended = ended(facts.as_ref(), &events);
        let closed = ended.is_some();
        let final_doc = ended.map(|(headline, struck)| final_message(view, headline, struck));
        let message = final_doc.as_ref().unwrap_or(message);
        // The permit `deliver` took covers the first request; each further one takes its own.
        let mut requests = 0;

        // A message in another channel (the room's `slack_channel` changed) is left there: the
        // PR gets a new one in the room's channel.
        let stored = chat_messages::get(&self.db, room, repository, number)
            .await?
            .filter(|m| m.channel == *channel);
        let before: Option<Shown> = stored
            .as_ref()
            .and_then(|m| m.shown.as_deref())
            .and_then(|s| serde_json::from_str(s).ok());
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
                                &shown,
                                &self.clock.timestamp(),
                            )
                            .await?;
                            target = Some((stored.channel, ts));
                            adopted = true;
                        }
                        // Not posted after all; a closed PR gets none, so its mark goes.
                        Ok(None) if closed => {
                            chat_messages::not_posted(&self.db, room, repository, number).await?;
                        }
                        Ok(None) => {}
                        Err(err) if err.refused() => {
                            // Cannot look (`missing_scope`: no `channels:history`; `not_in_channel`
                            // for a private channel without `groups:history`;
                            // docs.slack.dev/reference/methods/conversations.history, "Errors"):
                            // posting again may make a second message, which beats never posting
                            // again. (Logged; a closed PR still gets no new message.)
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
                        &shown,
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
                    let (said, broadcast) = reply(before.as_ref(), &now, view, message);
                    let reply = if broadcast {
                        slack_api::broadcast_reply(&channel, &ts, &said)
                    } else {
                        slack_api::reply(&channel, &ts, &said)
                    };
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
                    // Over or back to draft: no new message for it.
                    tracing::info!(
                        "the closed PR's message is gone from the channel; nothing to edit"
                    );
                    return Ok(Ok(()));
                }
                Err(err) => return Ok(Err(err.into_send_error("chat.update"))),
            }
        } else if closed {
            // No message to give its final edit: a closed PR (or a draft) gets no new
            // top-level message. A post in flight is left marked: a later message about the PR
            // looks for it first.
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
                    &shown,
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

    /// A weekly report in a Web-API room (issue 28): one new message (`chat.postMessage`), kept
    /// nowhere and never edited (it is no PR's living message, and no digest it supersedes).
    pub(super) async fn deliver_new_message(
        &self,
        message: &Doc,
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
        Ok(api
            .post_message(&slack_api::message(channel, message))
            .await
            .map(|_| ())
            .map_err(|err| err.into_send_error("chat.postMessage")))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(approved: &[&str], changes: &[&str], build: Option<&str>) -> Shown {
        Shown {
            state: "OPEN".into(),
            draft: false,
            commit: Some("aaaaaaaaaaaa".into()),
            approved_by: approved.iter().map(|s| s.to_string()).collect(),
            changes_requested_by: changes.iter().map(|s| s.to_string()).collect(),
            build: build.map(str::to_owned),
            turn: Some("reviewers".into()),
            turn_people: Vec::new(),
        }
    }

    #[test]
    fn each_change_is_said_in_the_order_a_reader_wants_it() {
        let before = shown(&["Bob"], &["Carol"], Some("FAILED"));
        let mut now = shown(&["Bob", "Dee", "Eve"], &[], Some("SUCCESSFUL"));
        assert_eq!(
            changes(&before, &now),
            [
                "Dee and Eve approved",
                "Request for changes withdrawn by Carol",
                "Build fixed"
            ]
        );
        // After new commits, verdicts gone with them are not "withdrawn".
        now.commit = Some("bbbbbbbbbbbb".into());
        now.approved_by.clear();
        now.build = Some("FAILED".into());
        assert_eq!(changes(&before, &now), ["New commits"]);
        let passing = shown(&[], &[], Some("INPROGRESS"));
        let mut after = shown(&[], &[], Some("SUCCESSFUL"));
        assert_eq!(changes(&passing, &after), ["Build passed"]);
        after.build = Some("STOPPED".into());
        assert_eq!(changes(&passing, &after), ["Build stopped"]);
        after.build = Some("FAILED".into());
        assert_eq!(changes(&passing, &after), ["Build failed"]);
        // Running again says nothing: the next result will.
        assert!(changes(&after, &passing).is_empty());
        let gone = shown(&["Bob", "Carol", "Dee"], &[], None);
        assert_eq!(
            changes(&gone, &shown(&[], &[], None)),
            ["Approval withdrawn by Bob, Carol and Dee"]
        );
        for (state, said) in [
            ("MERGED", "Merged"),
            ("DECLINED", "Declined"),
            ("DELETED", "Deleted"),
            ("SUPERSEDED", "Superseded"),
        ] {
            let mut closed = before.clone();
            closed.state = state.into();
            assert_eq!(changes(&before, &closed), [said]);
            assert_eq!(changes(&closed, &before), ["Reopened"]);
        }
        let mut draft = before.clone();
        draft.draft = true;
        assert_eq!(changes(&before, &draft), ["Moved back to draft"]);
        assert_eq!(changes(&draft, &before), ["Ready for review"]);
    }

    #[test]
    fn a_pr_no_longer_up_for_review_is_shown_by_its_stored_state() {
        let facts = |state: &str, draft: bool| PrFacts {
            state: state.into(),
            draft,
            source_commit: None,
        };
        let events = |e: &[NotifyEvent]| e.iter().copied().collect::<BTreeSet<_>>();
        let withdrawn = events(&[NotifyEvent::Withdrawn]);
        assert_eq!(
            ended(Some(&facts("DELETED", false)), &withdrawn),
            Some(("Deleted", true))
        );
        assert_eq!(
            ended(Some(&facts("SUPERSEDED", false)), &withdrawn),
            Some(("Superseded", true))
        );
        assert_eq!(
            ended(Some(&facts("OPEN", true)), &withdrawn),
            Some(("Draft", false))
        );
        assert_eq!(
            ended(Some(&facts("OPEN", false)), &withdrawn),
            Some(("Work in progress", false))
        );
        // Withdrawn, then reviewable again within one message: shown as it is.
        let both = events(&[NotifyEvent::Opened, NotifyEvent::Withdrawn]);
        assert_eq!(ended(Some(&facts("OPEN", false)), &both), None);
        assert_eq!(
            ended(Some(&facts("OPEN", true)), &both),
            Some(("Draft", false))
        );
        let merged = events(&[NotifyEvent::Approvals, NotifyEvent::Merged]);
        assert_eq!(
            ended(Some(&facts("MERGED", false)), &merged),
            Some(("Merged", true))
        );
        let approvals = events(&[NotifyEvent::Approvals]);
        assert_eq!(ended(Some(&facts("OPEN", false)), &approvals), None);
        assert_eq!(
            ended(Some(&facts("DECLINED", false)), &approvals),
            Some(("Declined", true))
        );
    }
}
