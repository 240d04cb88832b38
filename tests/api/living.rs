//! Living messages (issue 25): a room through the Slack Web API keeps one message per PR,
//! edited as the PR changes, with what changed threaded under it. Against the fake Web API of
//! `fake_slack`, on both databases; the exact requests are pinned, their bodies by snapshots.

use std::time::{Duration, Instant};

use pr_reminder::clock::Clock;
use pr_reminder::config::{NotifySettings, Room, Settings, Sink};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::fake_chat::PATIENCE;
use crate::fake_slack::{Call, FakeSlack, Scripted, BOT_TOKEN, CHANNEL};
use crate::helpers::{on_both, route, shared_fixtures, spawn_on, App, On, Served};
use crate::lifecycle::pr_event;

/// The own fixtures' repository (acme/payments-api).
const REPO_KEY: &str = "cloud/{5e1f0a77-9d0b-4c1e-8f53-0123456789ab}";
/// The shared atlantis fixtures' repository (lkysow/atlantis-example).
const ATLANTIS_KEY: &str = "cloud/{94189367-116b-436a-9f77-2314b97a6067}";

/// A Web-API room on `channel` of the fake, with `token`.
fn living_room(name: &str, fake: &FakeSlack, channel: &str, token: &str) -> Room {
    Room {
        name: name.into(),
        sink: Sink::SlackApi {
            channel: channel.into(),
            api_url: fake.api_url(),
            token: SecretString::from(token.to_owned()),
        },
    }
}

/// Every repository to every one of `rooms`, announcing everything (merged and declined too);
/// short coalescing, quick retries, a high rate.
fn settings(rooms: Vec<Room>, timeout: Duration) -> impl FnOnce(&mut Settings) {
    let mut everywhere = route(&["*"], "unused");
    everywhere.rooms = rooms.iter().map(|r| r.name.clone()).collect();
    everywhere.announce.merged = true;
    everywhere.announce.declined = true;
    let notify = NotifySettings {
        rooms,
        routes: vec![everywhere],
        coalesce: Duration::from_millis(200),
        max_attempts: 10,
        timeout,
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
        room_rate_per_minute: Some(6000),
    };
    move |s| s.notify = notify
}

async fn spawn(on: On, label: &str, fake: &FakeSlack) -> Option<App> {
    let room = living_room("living", fake, CHANNEL, BOT_TOKEN);
    spawn_on(
        on,
        label,
        settings(vec![room], Duration::from_secs(2)),
        Clock::system(),
    )
    .await
}

/// `10:mm:ss` on the own fixtures' day.
fn at(second: u32) -> String {
    format!("2026-11-20T10:00:{second:02}.000000+00:00")
}

/// acme/payments-api#`number` by Alice, open (or `state`), approved by `approvers`.
fn pr(number: i64, second: u32, state: &str, approvers: &[&str]) -> Value {
    let participants: Vec<(&str, &str, Option<&str>)> = approvers
        .iter()
        .map(|u| (*u, "REVIEWER", Some("approved")))
        .collect();
    pr_event(
        number,
        &at(second),
        state,
        "Add retries",
        "9b2c4e6f8a10",
        &participants,
    )
}

/// A shared (real) Cloud payload of `dir`.
fn shared(dir: &std::path::Path, file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(file)).unwrap()).unwrap()
}

/// (room, repository_key, number, channel, ts) of every `chat_messages` row.
type ChatRow = (String, String, i64, String, Option<String>);

async fn chat_rows(app: &impl Served) -> Vec<ChatRow> {
    app.query_rows(
        "SELECT room, repository_key, number, channel, ts FROM chat_messages \
         ORDER BY room, repository_key, number",
    )
    .await
}

/// (room, state, attempts, last_error) of every outbox row, once none is waiting any more.
type OutboxRow = (String, String, i64, Option<String>);

async fn settled(app: &impl Served, count: usize) -> Vec<OutboxRow> {
    let started = Instant::now();
    loop {
        let rows: Vec<OutboxRow> = app
            .query_rows("SELECT room, state, attempts, last_error FROM outbox ORDER BY id")
            .await;
        if rows.len() == count && rows.iter().all(|r| r.1 == "sent" || r.1 == "failed") {
            return rows;
        }
        assert!(started.elapsed() < PATIENCE, "{rows:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The calls as a test pins them: method and body, every `ts` the fake made written `TS1`,
/// `TS2`... in order of first appearance (they hold the time).
fn pinned(calls: &[Call]) -> Value {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for call in calls {
        assert_eq!(
            call.authorization.as_deref(),
            Some(format!("Bearer {BOT_TOKEN}").as_str()),
            "{}",
            call.method
        );
        let mut body = call.body.clone();
        for field in ["ts", "thread_ts", "oldest"] {
            if let Some(ts) = body[field].as_str().map(str::to_owned) {
                let name = if field == "oldest" {
                    "OLDEST".to_owned()
                } else {
                    let k = seen.iter().position(|s| *s == ts).unwrap_or_else(|| {
                        seen.push(ts.clone());
                        seen.len() - 1
                    });
                    format!("TS{}", k + 1)
                };
                body[field] = json!(name);
            }
        }
        if call.http_method == "POST" {
            assert_eq!(
                call.content_type.as_deref(),
                Some("application/json; charset=utf-8"),
                "{}",
                call.method
            );
        }
        out.push(json!({"method": format!("{} {}", call.http_method, call.method), "body": body}));
    }
    Value::Array(out)
}

/// The key the PR's message carries in its metadata.
fn metadata(room: &str, repository_key: &str, number: i64) -> Value {
    json!({
        "event_type": "pr_reminder_pull_request",
        "event_payload": {"key": format!("{room}|{repository_key}#{number}")},
    })
}

// ---------------------------------------------------------------------------------------------

/// Opened: `chat.postMessage` with the message and its key in the metadata, the `ts` stored.
/// Approved: `chat.update` of that `ts` to the current state, and a reply in its thread saying
/// what changed. Merged: the final edit and its reply. One top-level message throughout.
async fn one_message_per_pr_edited_as_it_changes(on: On) {
    let fake = FakeSlack::start().await;
    let Some(app) = spawn(on, "living_edit", &fake).await else {
        return;
    };
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    let calls = fake.exactly(1).await;
    let posted = fake.top_level();
    assert_eq!(posted.len(), 1);
    let ts = posted[0].ts.clone();
    assert_eq!(calls[0].body["metadata"], metadata("living", REPO_KEY, 1));
    settled(&app, 1).await;
    assert_eq!(
        chat_rows(&app).await,
        vec![(
            "living".into(),
            REPO_KEY.into(),
            1,
            CHANNEL.into(),
            Some(ts.clone())
        )]
    );

    app.processed("pullrequest:approved", &pr(1, 10, "OPEN", &["bob"]))
        .await;
    let calls = fake.exactly(3).await;
    assert_eq!(calls[1].method, "chat.update");
    assert_eq!(calls[1].body["ts"], ts.as_str());
    assert_eq!(calls[2].method, "chat.postMessage");
    assert_eq!(calls[2].body["thread_ts"], ts.as_str());
    settled(&app, 2).await;

    app.processed("pullrequest:fulfilled", &pr(1, 20, "MERGED", &["bob"]))
        .await;
    let calls = fake.exactly(5).await;
    assert_eq!(calls[3].method, "chat.update");
    assert_eq!(calls[3].body["ts"], ts.as_str());
    assert_eq!(calls[4].body["thread_ts"], ts.as_str());
    let rows = settled(&app, 3).await;
    assert!(rows.iter().all(|r| r.1 == "sent" && r.2 == 1), "{rows:#?}");

    assert_eq!(fake.top_level().len(), 1, "one top-level message");
    assert_eq!(fake.top_level()[0].edits, 2);
    assert_eq!(fake.replies(&ts).len(), 2);
    insta::assert_json_snapshot!("living__edited_as_it_changes", pinned(&calls));
    assert_eq!(chat_rows(&app).await[0].4.as_deref(), Some(ts.as_str()));
}

/// Real deliveries (atlantis' created, then fulfilled, of one PR): posted, then its final edit;
/// a merged PR never gets a new top-level message.
async fn real_deliveries_post_then_give_the_final_edit(on: On) {
    let Some(dir) = shared_fixtures() else { return };
    let fake = FakeSlack::start().await;
    let Some(app) = spawn(on, "living_real", &fake).await else {
        return;
    };
    let created = shared(
        &dir,
        "cloud/atlantis/bitbucket-cloud-pull-event-created.json",
    );
    let fulfilled = shared(
        &dir,
        "cloud/atlantis/bitbucket-cloud-pull-event-fulfilled.json",
    );
    app.processed("pullrequest:created", &created).await;
    fake.exactly(1).await;
    settled(&app, 1).await;
    app.processed("pullrequest:fulfilled", &fulfilled).await;
    let calls = fake.exactly(3).await;
    settled(&app, 2).await;
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        ["chat.postMessage", "chat.update", "chat.postMessage"]
    );
    let ts = fake.top_level()[0].ts.clone();
    assert_eq!(
        calls[0].body["metadata"],
        metadata("living", ATLANTIS_KEY, 16)
    );
    assert_eq!(calls[1].body["ts"], ts.as_str());
    assert_eq!(calls[2].body["thread_ts"], ts.as_str());
    assert_eq!(fake.top_level().len(), 1);
    insta::assert_json_snapshot!("living__real_deliveries", pinned(&calls));

    // A PR first seen merged gets nothing at all.
    let mut other = fulfilled.clone();
    other["pullrequest"]["id"] = json!(17);
    app.processed("pullrequest:fulfilled", &other).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.exactly(3).await;
    assert_eq!(settled(&app, 2).await.len(), 2);
}

/// A message deleted in Slack: the edit answers `message_not_found`, and a new message is
/// posted (with its key) and its `ts` stored; the same for `cant_update_message` and
/// `edit_window_closed`. Once the PR is merged, a deleted message is not posted again.
async fn a_deleted_message_is_posted_again(on: On) {
    let fake = FakeSlack::start().await;
    let Some(app) = spawn(on, "living_deleted", &fake).await else {
        return;
    };
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    fake.exactly(1).await;
    settled(&app, 1).await;
    let first = fake.top_level()[0].ts.clone();
    fake.delete(&first);

    app.processed("pullrequest:approved", &pr(1, 10, "OPEN", &["bob"]))
        .await;
    let calls = fake.exactly(3).await;
    let rows = settled(&app, 2).await;
    assert_eq!(rows[1], ("living".into(), "sent".into(), 1, None));
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        ["chat.postMessage", "chat.update", "chat.postMessage"]
    );
    assert_eq!(calls[1].body["ts"], first.as_str());
    assert_eq!(
        calls[2].body["thread_ts"],
        Value::Null,
        "a new top-level message"
    );
    assert_eq!(calls[2].body["metadata"], metadata("living", REPO_KEY, 1));
    let second = fake.top_level()[0].ts.clone();
    assert_ne!(first, second);
    assert_eq!(chat_rows(&app).await[0].4.as_deref(), Some(second.as_str()));

    // `cant_update_message` is the same: a new one.
    fake.script("chat.update", vec![Scripted::Error("cant_update_message")]);
    app.processed(
        "pullrequest:approved",
        &pr(1, 20, "OPEN", &["bob", "carol"]),
    )
    .await;
    let calls = fake.exactly(5).await;
    settled(&app, 3).await;
    assert_eq!(calls[3].body["ts"], second.as_str());
    assert_eq!(calls[4].body["thread_ts"], Value::Null);
    let third = fake.messages().last().unwrap().ts.clone();
    assert_eq!(chat_rows(&app).await[0].4.as_deref(), Some(third.as_str()));

    // `edit_window_closed` too.
    fake.script("chat.update", vec![Scripted::Error("edit_window_closed")]);
    app.processed("pullrequest:unapproved", &pr(1, 25, "OPEN", &["bob"]))
        .await;
    let calls = fake.exactly(7).await;
    settled(&app, 4).await;
    assert_eq!(calls[5].body["ts"], third.as_str());
    assert_eq!(calls[6].body["thread_ts"], Value::Null);
    let fourth = fake.messages().last().unwrap().ts.clone();
    assert_eq!(chat_rows(&app).await[0].4.as_deref(), Some(fourth.as_str()));

    // Merged after its message was deleted: nothing new in the channel.
    fake.delete(&fourth);
    app.processed("pullrequest:fulfilled", &pr(1, 30, "MERGED", &["bob"]))
        .await;
    let calls = fake.exactly(8).await;
    assert_eq!(calls[7].method, "chat.update");
    let rows = settled(&app, 5).await;
    assert_eq!(rows[4].1, "sent");
    let left: Vec<String> = fake.top_level().into_iter().map(|m| m.ts).collect();
    assert_eq!(
        left,
        [second, third],
        "the ones Slack would not let us edit"
    );
}

/// The errors that say the setup is wrong fail the message at once with Slack's error name as
/// its reason (no retry can help): an unknown channel, a wrong token. Nothing is recorded as
/// posted.
async fn a_refused_setup_fails_with_slacks_reason(on: On) {
    let fake = FakeSlack::start().await;
    let rooms = vec![
        living_room("missing", &fake, "C0MISSING1", BOT_TOKEN),
        living_room("revoked", &fake, CHANNEL, "xoxb-not-the-bots-token-at-all"),
    ];
    let Some(app) = spawn_on(
        on,
        "living_refused",
        settings(rooms, Duration::from_secs(2)),
        Clock::system(),
    )
    .await
    else {
        return;
    };
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    let rows = settled(&app, 2).await;
    assert_eq!(
        rows,
        vec![
            (
                "missing".into(),
                "failed".into(),
                1,
                Some(
                    "chat.postMessage: channel_not_found (no channel has that ID, or the bot \
                     cannot see it)"
                        .into()
                )
            ),
            (
                "revoked".into(),
                "failed".into(),
                1,
                Some("chat.postMessage: invalid_auth (check [direct] slack_bot_token)".into())
            ),
        ]
    );
    fake.exactly(2).await;
    assert!(fake.messages().is_empty());
    assert_eq!(chat_rows(&app).await, vec![]);
}

/// `ratelimited` (HTTP 429 with `Retry-After`): tried again no sooner than Slack asked.
async fn ratelimited_is_tried_again_after_retry_after(on: On) {
    let fake = FakeSlack::start().await;
    let Some(app) = spawn(on, "living_ratelimited", &fake).await else {
        return;
    };
    fake.script("chat.postMessage", vec![Scripted::RateLimited(1)]);
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    let calls = fake.exactly(2).await;
    let rows = settled(&app, 1).await;
    assert_eq!(rows, vec![("living".into(), "sent".into(), 2, None)]);
    let gap = calls[1].at - calls[0].at;
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    assert_eq!(calls[0].body, calls[1].body);
    assert_eq!(fake.top_level().len(), 1);
}

/// A post whose answer never came (the service timed out, or was killed, after Slack posted
/// it): the next attempt looks the message up by the key in its metadata and edits it to the
/// news (no reply: the message is that news), rather than posting a second one.
async fn a_post_whose_answer_was_lost_is_not_posted_twice(on: On) {
    let fake = FakeSlack::start().await;
    let room = living_room("living", &fake, CHANNEL, BOT_TOKEN);
    let Some(app) = spawn_on(
        on,
        "living_lost",
        settings(vec![room], Duration::from_millis(500)),
        Clock::system(),
    )
    .await
    else {
        return;
    };
    fake.script(
        "chat.postMessage",
        vec![Scripted::Late(Duration::from_secs(2))],
    );
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    let calls = fake.exactly(3).await;
    let rows = settled(&app, 1).await;
    assert_eq!(rows[0].1, "sent");
    assert_eq!(rows[0].2, 2, "the second attempt found the message");
    let methods: Vec<String> = calls
        .iter()
        .map(|c| format!("{} {}", c.http_method, c.method))
        .collect();
    assert_eq!(
        methods,
        [
            "POST chat.postMessage",
            "GET conversations.history",
            "POST chat.update",
        ]
    );
    let ts = fake.top_level()[0].ts.clone();
    assert_eq!(fake.top_level().len(), 1, "one top-level message");
    assert_eq!(calls[1].body["channel"], CHANNEL);
    assert_eq!(calls[1].body["include_all_metadata"], "true");
    assert_eq!(calls[2].body["ts"], ts.as_str());
    assert!(
        fake.replies(&ts).is_empty(),
        "the message is the news itself"
    );
    assert_eq!(chat_rows(&app).await[0].4.as_deref(), Some(ts.as_str()));
}

/// With the route's default switches (merges and declines not announced): a room that edits
/// its PR messages still gets the final edit, and a webhook room on the same route hears
/// nothing of the merge.
async fn the_final_edit_comes_without_announce_merged(on: On) {
    use crate::fake_chat::{hipchat_ok, Fake};
    let fake = FakeSlack::start().await;
    let hipchat = Fake::start(vec![hipchat_ok()]).await;
    let rooms = vec![
        living_room("living", &fake, CHANNEL, BOT_TOKEN),
        Room {
            name: "webhook".into(),
            sink: Sink::HipChat(SecretString::from(
                hipchat.url("/v2/room/1/notification?auth_token=t"),
            )),
        },
    ];
    let adjust = settings(rooms, Duration::from_secs(2));
    let Some(app) = spawn_on(
        on,
        "living_default_announce",
        move |s: &mut Settings| {
            adjust(s);
            s.notify.routes[0].announce = Default::default();
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    fake.exactly(1).await;
    settled(&app, 2).await;
    app.processed("pullrequest:rejected", &pr(1, 10, "DECLINED", &[]))
        .await;
    let calls = fake.exactly(3).await;
    let rows = settled(&app, 3).await;
    assert_eq!(rows[2], ("living".into(), "sent".into(), 1, None));
    assert_eq!(calls[1].method, "chat.update");
    assert_eq!(calls[2].body["text"], "Declined");
    assert_eq!(
        hipchat.exactly(1).await.len(),
        1,
        "the webhook room heard only the opening"
    );
}

/// Digests in a Web-API room: each is posted as a new message, and the one before it is
/// edited to one line naming the time of the newer (Slack's date formatting: each reader's own
/// zone; UTC as the fallback), its attachment removed.
async fn each_digest_supersedes_the_one_before(on: On) {
    use pr_reminder::config::SecretToken;
    const SWEEP_TOKEN: &str = "sweep-token-0123456789abcdef";
    let fake = FakeSlack::start().await;
    let room = living_room("living", &fake, CHANNEL, BOT_TOKEN);
    let adjust = settings(vec![room], Duration::from_secs(2));
    let Some(app) = spawn_on(
        on,
        "living_digests",
        move |s: &mut Settings| {
            adjust(s);
            s.sweep.token = Some(SecretToken(SecretString::from(SWEEP_TOKEN.to_owned())));
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    fake.exactly(1).await;
    settled(&app, 1).await;
    for round in 1..=2 {
        let response = app.post_bearer("/sweep?force=true", SWEEP_TOKEN).await;
        assert_eq!(response.status().as_u16(), 200);
        settled(&app, 1 + round).await;
    }
    let calls = fake.exactly(4).await;
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "chat.postMessage",
            "chat.postMessage",
            "chat.postMessage",
            "chat.update"
        ]
    );
    let top = fake.top_level();
    assert_eq!(top.len(), 3, "the PR's message and two digests");
    let (first, second) = (&top[1], &top[2]);
    assert_eq!(
        calls[1].body["text"], calls[2].body["text"],
        "the same list"
    );
    let posted: i64 = second.ts.split('.').next().unwrap().parse().unwrap();
    let hhmm = chrono::DateTime::from_timestamp(posted, 0)
        .unwrap()
        .format("%H:%M UTC");
    assert_eq!(
        calls[3].body,
        json!({
            "channel": CHANNEL,
            "ts": first.ts,
            "text": format!("Superseded by the digest of <!date^{posted}^{{time}}|{hhmm}>"),
            "attachments": [],
        })
    );
    assert_eq!(first.attachments, json!([]));
    assert_eq!(second.edits, 0);
    let stored: Vec<(String, String, String)> = app
        .query_rows("SELECT room, channel, ts FROM chat_digests")
        .await;
    assert_eq!(
        stored,
        vec![("living".into(), CHANNEL.into(), second.ts.clone())]
    );
}

/// The room's `slack_channel` changed since its message about a PR was posted: the PR gets a
/// new message in the room's channel, not an edit in the old one.
async fn a_room_moved_to_another_channel_starts_new_messages(on: On) {
    let fake = FakeSlack::start().await;
    let Some(app) = spawn(on, "living_moved", &fake).await else {
        return;
    };
    // What an earlier run in channel C0OLDCHAN1 left (the test app's own SQLite handle reads
    // only: this one writes).
    let sql = format!(
        "INSERT INTO chat_messages (room, repository_key, number, channel, ts, posting_since, \
         created_at, edited_at) VALUES ('living', '{REPO_KEY}', 1, 'C0OLDCHAN1', \
         '1700000000.000100', NULL, '2026-11-20T10:00:00Z', NULL)"
    );
    match &app {
        App::Sqlite(test) => {
            let url = format!("sqlite://{}", test.db_path.display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query(&sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        App::Postgres(_) => {
            let _: Vec<(i64,)> = app.query_rows(&sql).await;
        }
    }
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    let calls = fake.exactly(1).await;
    settled(&app, 1).await;
    assert_eq!(calls[0].method, "chat.postMessage");
    assert_eq!(calls[0].body["channel"], CHANNEL);
    assert_eq!(calls[0].body["thread_ts"], Value::Null);
    let ts = fake.top_level()[0].ts.clone();
    assert_eq!(
        chat_rows(&app).await,
        vec![(
            "living".into(),
            REPO_KEY.into(),
            1,
            CHANNEL.into(),
            Some(ts)
        )]
    );
}

/// A thread reply Slack refuses after the edit went through: the row is sent (the message shows
/// the PR's state), not retried (a retry would edit again and could post the reply twice).
async fn a_refused_thread_reply_leaves_the_edit_sent(on: On) {
    let fake = FakeSlack::start().await;
    let Some(app) = spawn(on, "living_reply", &fake).await else {
        return;
    };
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    fake.exactly(1).await;
    settled(&app, 1).await;
    let ts = fake.top_level()[0].ts.clone();

    fake.script("chat.postMessage", vec![Scripted::Error("internal_error")]);
    app.processed("pullrequest:approved", &pr(1, 10, "OPEN", &["bob"]))
        .await;
    let rows = settled(&app, 2).await;
    assert!(rows.iter().all(|r| r.1 == "sent" && r.2 == 1), "{rows:#?}");
    let calls = fake.exactly(3).await;
    assert_eq!(calls[1].method, "chat.update");
    assert_eq!(calls[2].method, "chat.postMessage");
    assert_eq!(calls[2].body["thread_ts"], ts.as_str());
    assert_eq!(fake.top_level()[0].edits, 1);
    assert!(fake.replies(&ts).is_empty());
}

/// acme/payments-api#1 by Alice at `second`, in `state`, on source commit `commit`, with the
/// participants' verdicts (`approved`, `changes_requested`).
fn pr_with(second: u32, state: &str, commit: &str, verdicts: &[(&str, &str)]) -> Value {
    let participants: Vec<(&str, &str, Option<&str>)> = verdicts
        .iter()
        .map(|(u, v)| (*u, "REVIEWER", Some(*v)))
        .collect();
    pr_event(1, &at(second), state, "Add retries", commit, &participants)
}

/// The replies under the edits say what changed, from what the message showed before: who
/// approved, who asked for changes, new commits, the merge; and, when the turn moved, whose it
/// is now. `reply_broadcast` (the reply shown in the channel too) only when the turn moves to
/// someone `[[users]]` maps to a Slack member (Alice, `<@U0ALICE01>`): not when Bob's approval
/// leaves Carol (already asked), nor when Alice's turn becomes "ready to merge: Alice".
async fn replies_say_what_changed_and_call_whose_turn_it_is(on: On) {
    use pr_reminder::config::UserMapping;
    let fake = FakeSlack::start().await;
    let room = living_room("living", &fake, CHANNEL, BOT_TOKEN);
    let adjust = settings(vec![room], Duration::from_secs(2));
    let Some(app) = spawn_on(
        on,
        "living_replies",
        move |s: &mut Settings| {
            adjust(s);
            s.commands.users = vec![
                UserMapping {
                    bitbucket: "alice".into(),
                    hipchat: None,
                    slack: Some("U0ALICE01".into()),
                    ..UserMapping::default()
                },
                UserMapping {
                    bitbucket: "carol".into(),
                    hipchat: None,
                    slack: Some("U0CAROL01".into()),
                    ..UserMapping::default()
                },
            ];
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    let mut sent = 0;
    let mut step = |event: &'static str, body: Value, calls: usize| {
        sent += 1;
        let (app, fake) = (&app, &fake);
        let rows = sent;
        async move {
            app.processed(event, &body).await;
            let all = fake.exactly(calls).await;
            let outbox = settled(app, rows).await;
            assert!(outbox.iter().all(|r| r.1 == "sent"), "{outbox:#?}");
            all
        }
    };
    step(
        "pullrequest:created",
        pr_with(0, "OPEN", "aaaaaaaaaaaa", &[]),
        1,
    )
    .await;
    let ts = fake.top_level()[0].ts.clone();
    step(
        "pullrequest:approved",
        pr_with(10, "OPEN", "aaaaaaaaaaaa", &[("bob", "approved")]),
        3,
    )
    .await;
    step(
        "pullrequest:changes_request_created",
        pr_with(
            20,
            "OPEN",
            "aaaaaaaaaaaa",
            &[("bob", "approved"), ("carol", "changes_requested")],
        ),
        5,
    )
    .await;
    // Alice pushes, and Carol approves the new commit.
    step(
        "pullrequest:approved",
        pr_with(
            30,
            "OPEN",
            "bbbbbbbbbbbb",
            &[("bob", "approved"), ("carol", "approved")],
        ),
        7,
    )
    .await;
    let calls = step(
        "pullrequest:fulfilled",
        pr_with(
            40,
            "MERGED",
            "bbbbbbbbbbbb",
            &[("bob", "approved"), ("carol", "approved")],
        ),
        9,
    )
    .await;
    let replies: Vec<Value> = calls
        .iter()
        .filter(|c| c.body["thread_ts"].is_string())
        .map(|c| {
            assert_eq!(c.body["thread_ts"], ts.as_str());
            assert_eq!(c.body["channel"], CHANNEL);
            json!([c.body["text"], c.body["reply_broadcast"]])
        })
        .collect();
    assert_eq!(
        replies,
        vec![
            json!([
                "Bob Reviewer approved · needs review from <@U0CAROL01>",
                null
            ]),
            json!([
                "Changes requested by Carol Reviewer · <@U0ALICE01>'s turn",
                true
            ]),
            json!([
                "New commits · Carol Reviewer approved · ready to merge: <@U0ALICE01>",
                null
            ]),
            json!(["Merged", null]),
        ]
    );
    assert_eq!(fake.top_level().len(), 1);
    assert_eq!(fake.replies(&ts).len(), 4);
}

/// Back to draft: the message is edited to say so (gray, its title not struck: it may come
/// back), with "Moved back to draft" under it; ready again, it shows the PR's state again.
/// Opened and moved to draft before its message went out: nothing is posted at all.
async fn a_pr_moved_back_to_draft_is_shown_so(on: On) {
    let fake = FakeSlack::start().await;
    let Some(app) = spawn(on, "living_draft", &fake).await else {
        return;
    };
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    fake.exactly(1).await;
    settled(&app, 1).await;
    let ts = fake.top_level()[0].ts.clone();
    let mut draft = pr(1, 10, "OPEN", &[]);
    draft["pullrequest"]["draft"] = json!(true);
    app.processed("pullrequest:updated", &draft).await;
    let calls = fake.exactly(3).await;
    let rows = settled(&app, 2).await;
    assert_eq!(rows[1].1, "sent");
    assert_eq!(calls[1].method, "chat.update");
    assert_eq!(calls[1].body["ts"], ts.as_str());
    assert_eq!(
        calls[1].body["text"],
        "*Draft*: <https://bitbucket.org/acme/payments-api/pull-requests/1|Add retries> \
         (acme/payments-api #1) by Alice Author\n0/2 approvals"
    );
    assert_eq!(calls[1].body["attachments"][0]["color"], "#9ca3af");
    assert_eq!(calls[2].body["text"], "Moved back to draft");
    assert_eq!(calls[2].body["thread_ts"], ts.as_str());

    app.processed("pullrequest:updated", &pr(1, 20, "OPEN", &[]))
        .await;
    let calls = fake.exactly(5).await;
    settled(&app, 3).await;
    assert_eq!(
        calls[3].body["text"],
        "*Needs review from Bob Reviewer, Carol Reviewer*: \
         <https://bitbucket.org/acme/payments-api/pull-requests/1|Add retries> \
         (acme/payments-api #1) by Alice Author\n0/2 approvals"
    );
    assert_eq!(
        calls[4].body["text"],
        "Ready for review · needs review from Bob Reviewer, Carol Reviewer"
    );
    assert_eq!(fake.top_level().len(), 1);

    // PR 2: opened, and back to draft within the coalescing window: no message at all.
    let mut opened = pr(2, 0, "OPEN", &[]);
    opened["pullrequest"]["id"] = json!(2);
    let mut redrafted = pr(2, 1, "OPEN", &[]);
    redrafted["pullrequest"]["draft"] = json!(true);
    app.processed("pullrequest:created", &opened).await;
    app.processed("pullrequest:updated", &redrafted).await;
    let rows = settled(&app, 4).await;
    assert_eq!(rows[3], ("living".into(), "sent".into(), 1, None));
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.exactly(5).await;
}

/// The lookup after a post whose answer was lost is refused (`missing_scope`: the bot token
/// lacks `channels:history`; docs.slack.dev/reference/methods/conversations.history,
/// "Errors"): the message is posted again (a warning in the log), which may leave a second
/// message beside the first, a rare duplicate rather than none. The new one is the PR's
/// message from then on.
async fn a_refused_lookup_posts_again(on: On) {
    let fake = FakeSlack::start().await;
    let room = living_room("living", &fake, CHANNEL, BOT_TOKEN);
    let Some(app) = spawn_on(
        on,
        "living_no_scope",
        settings(vec![room], Duration::from_millis(500)),
        Clock::system(),
    )
    .await
    else {
        return;
    };
    fake.script(
        "chat.postMessage",
        vec![Scripted::Late(Duration::from_secs(2))],
    );
    fake.script(
        "conversations.history",
        vec![Scripted::Error("missing_scope")],
    );
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    let calls = fake.exactly(3).await;
    let rows = settled(&app, 1).await;
    assert_eq!(rows, vec![("living".into(), "sent".into(), 2, None)]);
    let methods: Vec<String> = calls
        .iter()
        .map(|c| format!("{} {}", c.http_method, c.method))
        .collect();
    assert_eq!(
        methods,
        [
            "POST chat.postMessage",
            "GET conversations.history",
            "POST chat.postMessage"
        ]
    );
    assert_eq!(calls[0].body, calls[2].body, "the same message again");
    let top = fake.top_level();
    assert_eq!(top.len(), 2, "the refused lookup's duplicate");
    assert_eq!(
        chat_rows(&app).await[0].4.as_deref(),
        Some(top[1].ts.as_str())
    );
}

/// A post whose answer was lost (or that failed without Slack's answer, a 502), then the PR
/// merged before the row's next attempt: that attempt finds the PR over, looks the message up,
/// and gives what it finds the final edit (no reply: the message is that news; the merge's own
/// row then says "Merged" under it); or finds none, and posts nothing, the "being posted" mark
/// dropped. Never a new top-level message for a closed PR.
async fn a_pr_closed_while_its_message_was_being_posted(on: On) {
    let fake = FakeSlack::start().await;
    let room = living_room("living", &fake, CHANNEL, BOT_TOKEN);
    let adjust = settings(vec![room], Duration::from_millis(500));
    let Some(app) = spawn_on(
        on,
        "living_closed_posting",
        move |s: &mut Settings| {
            adjust(s);
            s.notify.retry_min = Duration::from_secs(2);
            s.notify.retry_max = Duration::from_secs(2);
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    // PR 1: Slack posted it, the answer was lost.
    fake.script(
        "chat.postMessage",
        vec![Scripted::Late(Duration::from_secs(1))],
    );
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    wait_retrying(&app, 1).await;
    app.processed("pullrequest:fulfilled", &pr(1, 10, "MERGED", &[]))
        .await;
    let calls = fake.exactly(5).await;
    let rows = settled(&app, 2).await;
    assert_eq!(
        rows,
        vec![
            ("living".into(), "sent".into(), 2, None),
            ("living".into(), "sent".into(), 1, None)
        ]
    );
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "chat.postMessage",
            "conversations.history",
            "chat.update",
            "chat.update",
            "chat.postMessage"
        ]
    );
    let top = fake.top_level();
    assert_eq!(top.len(), 1);
    assert_eq!(calls[2].body["ts"], top[0].ts.as_str());
    assert!(top[0].text.starts_with("*Merged*: ~<"), "{}", top[0].text);
    let replies: Vec<String> = fake
        .replies(&top[0].ts)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(replies, ["Merged"]);

    // PR 2: the post failed without Slack's answer (502): nothing to find, nothing posted.
    fake.script("chat.postMessage", vec![Scripted::Status(502)]);
    app.processed("pullrequest:created", &pr(2, 20, "OPEN", &[]))
        .await;
    wait_retrying(&app, 3).await;
    let marked = chat_rows(&app).await;
    assert_eq!(marked.len(), 2);
    assert_eq!(marked[1].4, None, "being posted");
    app.processed("pullrequest:fulfilled", &pr(2, 30, "MERGED", &[]))
        .await;
    let calls = fake.exactly(7).await;
    let rows = settled(&app, 4).await;
    assert_eq!(rows[2], ("living".into(), "sent".into(), 2, None));
    assert_eq!(rows[3], ("living".into(), "sent".into(), 1, None));
    assert_eq!(calls[5].method, "chat.postMessage");
    assert_eq!(calls[6].method, "conversations.history");
    assert_eq!(fake.top_level().len(), 1, "nothing new for PR 2");
    let left: Vec<i64> = chat_rows(&app).await.iter().map(|r| r.2).collect();
    assert_eq!(left, [1], "PR 2's mark dropped");
}

/// Waits until the `count`-th outbox row is waiting for its second attempt.
async fn wait_retrying(app: &App, count: usize) {
    let started = Instant::now();
    loop {
        let rows: Vec<(String, i64)> = app
            .query_rows("SELECT state, attempts FROM outbox ORDER BY id")
            .await;
        if rows.len() == count && rows[count - 1] == ("retrying".to_owned(), 1) {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A build on the PR's source commit fails, then passes: each edit's reply says so, and whose
/// turn it is now; the failure moves the turn to Alice (mapped to a Slack member), so that
/// reply is also shown in the channel (`reply_broadcast`); the fix hands it back to Bob and
/// Carol (not mapped): a thread reply only.
async fn build_replies_say_failed_then_fixed(on: On) {
    use crate::lifecycle::commit_status;
    use pr_reminder::config::UserMapping;
    let fake = FakeSlack::start().await;
    let room = living_room("living", &fake, CHANNEL, BOT_TOKEN);
    let adjust = settings(vec![room], Duration::from_secs(2));
    let Some(app) = spawn_on(
        on,
        "living_builds",
        move |s: &mut Settings| {
            adjust(s);
            s.commands.users = vec![UserMapping {
                bitbucket: "alice".into(),
                hipchat: None,
                slack: Some("U0ALICE01".into()),
                ..UserMapping::default()
            }];
        },
        Clock::system(),
    )
    .await
    else {
        return;
    };
    const COMMIT: &str = "9b2c4e6f8a100c1d2e3f4a5b6c7d8e9f0a1b2c3d";
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    fake.exactly(1).await;
    settled(&app, 1).await;
    let ts = fake.top_level()[0].ts.clone();
    app.processed(
        "repo:commit_status_updated",
        &commit_status("ci", "FAILED", COMMIT, &at(10)),
    )
    .await;
    fake.exactly(3).await;
    settled(&app, 2).await;
    app.processed(
        "repo:commit_status_updated",
        &commit_status("ci", "SUCCESSFUL", COMMIT, &at(20)),
    )
    .await;
    let calls = fake.exactly(5).await;
    settled(&app, 3).await;
    let replies: Vec<Value> = calls
        .iter()
        .filter(|c| c.body["thread_ts"] == ts.as_str())
        .map(|c| json!([c.body["text"], c.body["reply_broadcast"]]))
        .collect();
    assert_eq!(
        replies,
        vec![
            json!(["Build failed · <@U0ALICE01>'s turn", true]),
            json!([
                "Build fixed · needs review from Bob Reviewer, Carol Reviewer",
                null
            ]),
        ]
    );
    assert!(calls[3].body["text"]
        .as_str()
        .unwrap()
        .ends_with("0/2 approvals · build passed"));
}

/// Data Center: a PR deleted (`pr:deleted`) gets the final edit of its message, "Deleted" with
/// its title struck through, and "Deleted" in its thread; nothing new in the channel. (Other
/// rooms drop what they had queued for it, as before.)
async fn a_deleted_pr_gets_its_final_edit(on: On) {
    use crate::datacenter::{fixture, processed};
    let fake = FakeSlack::start().await;
    let Some(app) = spawn(on, "living_dc_deleted", &fake).await else {
        return;
    };
    processed(&app, "pr:opened", &fixture("base.json")).await;
    fake.exactly(1).await;
    settled(&app, 1).await;
    let ts = fake.top_level()[0].ts.clone();
    processed(&app, "pr:deleted", &fixture("pr_deleted.json")).await;
    let calls = fake.exactly(3).await;
    let rows = settled(&app, 2).await;
    assert_eq!(rows[1], ("living".into(), "sent".into(), 1, None));
    assert_eq!(calls[1].method, "chat.update");
    assert_eq!(calls[1].body["ts"], ts.as_str());
    let text = calls[1].body["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("*Deleted*: ~<{}|", crate::datacenter::PR_URL)),
        "{text}"
    );
    assert_eq!(calls[1].body["attachments"][0]["color"], "#9ca3af");
    assert_eq!(calls[2].body["text"], "Deleted");
    assert_eq!(calls[2].body["thread_ts"], ts.as_str());
    assert_eq!(fake.top_level().len(), 1);
}

on_both!(
    a_deleted_pr_gets_its_final_edit,
    build_replies_say_failed_then_fixed,
    a_refused_lookup_posts_again,
    a_pr_closed_while_its_message_was_being_posted,
    replies_say_what_changed_and_call_whose_turn_it_is,
    a_pr_moved_back_to_draft_is_shown_so,
    a_refused_thread_reply_leaves_the_edit_sent,
    a_room_moved_to_another_channel_starts_new_messages,
    each_digest_supersedes_the_one_before,
    the_final_edit_comes_without_announce_merged,
    one_message_per_pr_edited_as_it_changes,
    real_deliveries_post_then_give_the_final_edit,
    a_deleted_message_is_posted_again,
    a_refused_setup_fails_with_slacks_reason,
    ratelimited_is_tried_again_after_retry_after,
    a_post_whose_answer_was_lost_is_not_posted_twice,
);

/// The service killed (SIGKILL) after Slack took its `chat.postMessage` and before it stored the
/// `ts`: started again, it sends the message again, finds the one already posted by the key in
/// its metadata, and edits it. One top-level message. (The real binary, on SQLite.)
#[test]
fn a_kill_between_the_post_and_its_commit_leaves_one_message() {
    use crate::cli::{command, serve};
    use crate::helpers::{deliver_signed, SECRET};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime.block_on(FakeSlack::start());
    // Slack posts the message, but its answer would come only after the kill.
    fake.script(
        "chat.postMessage",
        vec![Scripted::Late(Duration::from_secs(60))],
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let config = dir.path().join("pr-reminder.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\ncoalesce_seconds = 0.2\ntimeout_seconds = 120\nretry_min_ms = 50\n\n\
             [[rooms]]\nname = \"living\"\nslack_channel = \"{CHANNEL}\"\n"
        ),
    )
    .unwrap();
    let cmd = || {
        let mut cmd = command(dir.path());
        cmd.env("PR_REMINDER_CONFIG", &config)
            .env("PR_REMINDER_DATABASE", &db)
            .env("PR_REMINDER_WEBHOOK_SECRET", SECRET)
            .env("PR_REMINDER_SLACK_BOT_TOKEN", BOT_TOKEN)
            .env("PR_REMINDER_SLACK_API_URL", fake.api_url());
        cmd
    };
    let mut served = serve(cmd(), false);
    let address = format!("http://127.0.0.1:{}", served.port);
    let body = serde_json::to_vec(&pr(1, 0, "OPEN", &[])).unwrap();
    let answer = runtime.block_on(deliver_signed(
        &reqwest::Client::new(),
        &address,
        "pullrequest:created",
        "kill-1",
        &body,
    ));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let started = Instant::now();
    while fake.calls().is_empty() {
        assert!(started.elapsed() < PATIENCE, "no chat.postMessage");
        std::thread::sleep(Duration::from_millis(10));
    }
    served.signal("-KILL");
    served.wait(Duration::from_secs(10));
    assert_eq!(fake.top_level().len(), 1, "Slack has the message");

    let _served = serve(cmd(), false);
    let calls = runtime.block_on(fake.exactly(3));
    let methods: Vec<String> = calls
        .iter()
        .map(|c| format!("{} {}", c.http_method, c.method))
        .collect();
    assert_eq!(
        methods,
        [
            "POST chat.postMessage",
            "GET conversations.history",
            "POST chat.update"
        ]
    );
    let posted = fake.top_level();
    assert_eq!(posted.len(), 1, "one top-level message: {posted:#?}");
    assert_eq!(calls[2].body["ts"], posted[0].ts.as_str());
    assert_eq!(posted[0].edits, 1);
    let stored: Vec<(String, Option<String>)> = runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query_as("SELECT channel, ts FROM chat_messages")
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    assert_eq!(
        stored,
        vec![(CHANNEL.to_owned(), Some(posted[0].ts.clone()))]
    );
}

/// The Web API's limits (`slack_api::Limits`), one per process and shared by every caller (two
/// rooms on one channel, direct messages), on a frozen clock so that every wait is exact:
///
/// - requests to one channel: a burst of `CHANNEL_BURST`, then one per `CHANNEL_PERIOD` (the
///   next one waits, sending nothing, until the clock reaches its turn); another channel has
///   its own turn;
/// - HTTP 429 with `Retry-After: 2`: the call answers `ratelimited` with those 2 s (what the
///   outbox waits before the row's next try), and until they have passed nothing at all goes
///   to that channel, whatever the method: a call answers `ratelimited` with the time left.
#[tokio::test]
async fn the_web_api_keeps_each_channels_rate_and_its_retry_after() {
    use pr_reminder::clock::ManualClock;
    use pr_reminder::notify::slack_api::{Api, CallError, Limits, CHANNEL_BURST};

    let fake = FakeSlack::start().await;
    let manual = ManualClock::frozen(chrono::DateTime::from_timestamp(1_796_000_000, 0).unwrap());
    let limits = Limits::new(manual.clock());
    let client = reqwest::Client::new();
    let base = fake.api_url();
    let token = SecretString::from(BOT_TOKEN.to_owned());
    let text = |n: u32| json!({"channel": CHANNEL, "text": format!("message {n}")});

    // The burst goes at once.
    for n in 0..CHANNEL_BURST {
        Api::new(&client, &base, &token, &limits)
            .post_message(&text(n))
            .await
            .unwrap();
    }
    assert_eq!(fake.calls().len(), CHANNEL_BURST as usize);
    // The next waits for its turn, one second on: nothing is sent before.
    let next = tokio::spawn({
        let (client, base, token, limits) =
            (client.clone(), base.clone(), token.clone(), limits.clone());
        let body = text(9);
        async move {
            Api::new(&client, &base, &token, &limits)
                .post_message(&body)
                .await
        }
    });
    assert!(manual.until_waiting(1, PATIENCE).await);
    assert_eq!(
        manual.waits(),
        vec![manual.now() + chrono::Duration::seconds(1)]
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        fake.calls().len(),
        CHANNEL_BURST as usize,
        "sent before its turn"
    );
    // Another channel is not held by this one's turn (the fake does not know it).
    let other = Api::new(&client, &base, &token, &limits)
        .call(
            "chat.postMessage",
            &json!({"channel": "C0OTHER001", "text": "x"}),
        )
        .await;
    assert_eq!(other.unwrap_err().error(), Some("channel_not_found"));
    manual.advance(Duration::from_secs(1));
    next.await.unwrap().unwrap();
    assert_eq!(fake.calls().len(), CHANNEL_BURST as usize + 2);

    // A 429: the call says `ratelimited` with Slack's Retry-After.
    manual.advance(Duration::from_secs(10));
    fake.script("chat.update", vec![Scripted::RateLimited(2)]);
    let api = Api::new(&client, &base, &token, &limits);
    let update = json!({"channel": CHANNEL, "ts": "1.0", "text": "edited"});
    let limited = api.call("chat.update", &update).await.unwrap_err();
    assert_eq!(
        limited,
        CallError::Slack {
            error: "ratelimited".into(),
            after: Some(Duration::from_secs(2))
        }
    );
    let sent = fake.calls().len();
    // For those 2 s nothing goes to the channel, whatever the method.
    manual.advance(Duration::from_millis(1500));
    let held = api.post_message(&text(10)).await.unwrap_err();
    assert_eq!(
        held,
        CallError::Slack {
            error: "ratelimited".into(),
            after: Some(Duration::from_millis(500))
        }
    );
    assert_eq!(
        held.clone().into_send_error("chat.postMessage"),
        pr_reminder::notify::sink::SendError::Retry {
            after: Some(Duration::from_millis(500)),
            reason: "chat.postMessage: ratelimited".into()
        }
    );
    assert!(held.refused(), "nothing was posted");
    let lookup = api.find(CHANNEL, "0", "key").await.unwrap_err();
    assert_eq!(lookup.error(), Some("ratelimited"));
    assert_eq!(
        fake.calls().len(),
        sent,
        "a call went out while Slack said to wait"
    );
    // Then it goes.
    manual.advance(Duration::from_millis(500));
    api.post_message(&text(11)).await.unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), sent + 1);
    assert_eq!(calls[sent].body["text"], "message 11");
}

/// `conversations.history` pages (`limit`, `cursor`, `response_metadata.next_cursor` while
/// `has_more`: docs.slack.dev/reference/methods/conversations.history, and
/// docs.slack.dev/apis/web-api/pagination): a lookup follows the cursor page by page until it
/// finds the key, and reads at most 10 pages (1,000 messages) before it gives up.
#[tokio::test]
async fn a_lookup_follows_the_cursor_through_the_channels_history() {
    use pr_reminder::notify::slack_api::{Api, Limits};

    let fake = FakeSlack::start().await;
    let limits = Limits::with_spacing(Clock::system(), Duration::from_millis(1), 100);
    let client = reqwest::Client::new();
    let base = fake.api_url();
    let token = SecretString::from(BOT_TOKEN.to_owned());
    let api = Api::new(&client, &base, &token, &limits);
    let key = "living|cloud/{x}#1";
    let ours = json!({"event_type": "pr_reminder_pull_request", "event_payload": {"key": key}});
    // The message sought is the oldest, under 250 newer ones (another bot's metadata on one).
    let wanted = fake.insert(1_796_000_000, "ours", ours);
    for k in 1..=250u64 {
        let metadata = if k == 7 {
            json!({"event_type": "other_app", "event_payload": {"key": key}})
        } else {
            Value::Null
        };
        fake.insert(1_796_000_000 + k, "someone else's", metadata);
    }
    let found = api.find(CHANNEL, "1795999000", key).await.unwrap();
    assert_eq!(found.as_deref(), Some(wanted.as_str()));
    let pages: Vec<(Value, Value, Value)> = fake
        .calls()
        .iter()
        .map(|c| {
            assert_eq!(c.method, "conversations.history");
            assert_eq!(c.body["channel"], CHANNEL);
            assert_eq!(c.body["oldest"], "1795999000");
            (
                c.body["limit"].clone(),
                c.body["include_all_metadata"].clone(),
                c.body["cursor"].clone(),
            )
        })
        .collect();
    assert_eq!(
        pages,
        vec![
            (json!("100"), json!("true"), Value::Null),
            (json!("100"), json!("true"), json!("dXNlcjpV100")),
            (json!("100"), json!("true"), json!("dXNlcjpV200")),
        ]
    );
    // A key no message carries: every page read, then none.
    assert_eq!(
        api.find(CHANNEL, "0", "living|other#2").await.unwrap(),
        None
    );
    assert_eq!(fake.calls().len(), 6);
    // Beyond 10 pages the lookup stops: the message is taken as not posted.
    for k in 251..=1_000u64 {
        fake.insert(1_796_000_000 + k, "someone else's", Value::Null);
    }
    assert_eq!(api.find(CHANNEL, "0", key).await.unwrap(), None);
    assert_eq!(fake.calls().len(), 16, "ten pages");
}

/// PostgreSQL, several replicas: the room's lease is lost while an edit is under way (its
/// answer, `message_not_found`, comes after the lease's renewal time): the new message is not
/// posted (another replica sends the room's messages now), the "being posted" mark is dropped
/// and the row waits; once the lease is back, the row is sent, one new message.
#[tokio::test]
async fn a_lease_lost_before_the_post_posts_nothing() {
    let fake = FakeSlack::start().await;
    let room = living_room("living", &fake, CHANNEL, BOT_TOKEN);
    let Some(app) = spawn_on(
        On::Postgres,
        "living_lease",
        settings(vec![room], Duration::from_secs(10)),
        Clock::system(),
    )
    .await
    else {
        return;
    };
    app.processed("pullrequest:created", &pr(1, 0, "OPEN", &[]))
        .await;
    fake.exactly(1).await;
    settled(&app, 1).await;
    let first = fake.top_level()[0].ts.clone();
    fake.delete(&first);
    fake.script(
        "chat.update",
        vec![Scripted::LateError(
            "message_not_found",
            Duration::from_millis(3_500),
        )],
    );
    app.processed("pullrequest:approved", &pr(1, 10, "OPEN", &["bob"]))
        .await;
    let started = Instant::now();
    while fake.calls().len() < 2 {
        assert!(started.elapsed() < PATIENCE);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another replica takes the room (its session alive: the app's own, so it is not stale).
    let _: Vec<(String,)> = app
        .query_rows("UPDATE room_leases SET holder = 'another-replica' RETURNING holder")
        .await;
    let started = Instant::now();
    loop {
        let rows: Vec<(String, i64, Option<String>)> = app
            .query_rows("SELECT state, attempts, last_error FROM outbox ORDER BY id")
            .await;
        if rows[1].1 == 1 && rows[1].0 == "retrying" {
            assert_eq!(
                rows[1].2.as_deref(),
                Some("another replica took the room's lease")
            );
            break;
        }
        assert!(started.elapsed() < PATIENCE, "{rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let methods: Vec<String> = fake.calls().iter().map(|c| c.method.clone()).collect();
    assert_eq!(
        methods,
        ["chat.postMessage", "chat.update"],
        "nothing posted"
    );
    assert_eq!(chat_rows(&app).await, vec![], "the mark dropped");

    // The lease is free again: this replica takes it and sends the row.
    let _: Vec<(String,)> = app
        .query_rows("DELETE FROM room_leases RETURNING room")
        .await;
    let calls = fake.exactly(3).await;
    let rows = settled(&app, 2).await;
    assert_eq!(rows[1], ("living".into(), "sent".into(), 2, None));
    assert_eq!(calls[2].method, "chat.postMessage");
    assert_eq!(calls[2].body["thread_ts"], Value::Null);
    let top = fake.top_level();
    assert_eq!(top.len(), 1);
    assert_eq!(
        chat_rows(&app).await[0].4.as_deref(),
        Some(top[0].ts.as_str())
    );
}
