//! Every renderer in every chat format, pinned: the exact request body (or console line) each
//! kind of room is sent, as `insta` snapshots (`tests/snapshots/render__*.snap`), over realistic
//! and hostile states: titles with markup of every chat (`<b>`, `@channel`, `*`, `<!here>`, `&`,
//! emoji), 0, 1 and 300 reviewers, a Cloud and a Data Center PR, a 60-PR digest, a backlog
//! summary that must split, the HipChat mention ping. A change to any of them is a change of what
//! users see: it shows up here as a snapshot diff, to be named in the commit.
//!
//! The `/reviews` answers (HipChat, Slack, Mattermost) are pinned the same way in `tests/api`
//! (`commands::answers_in_every_chat`), through HTTP.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use pr_reminder::config::{Sink, SweepSettings};
use pr_reminder::domain::{
    AuthorReason, BuildState, NotifyEvent, PullRequestView, RepositoryKey, Reviewer, RoomDigest,
    Turn, UserKey,
};
use pr_reminder::notify::doc::{self, Block, Doc};
use pr_reminder::notify::{digest, message, sink};
use secrecy::SecretString;

#[path = "render/review_flow.rs"]
mod review_flow;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap() // a Tuesday
}

/// A title with something of every chat's markup in it.
const HOSTILE: &str =
    "<b>Fix</b> @channel *bold* <!here> <@U123> & &amp; _it_ ~s~ `c` [x](https://evil) # 🚀 émoji";

/// The five kinds of room, each with a URL that is never called.
fn sinks() -> Vec<(&'static str, Sink)> {
    let url = |u: &str| SecretString::from(u.to_owned());
    vec![
        (
            "hipchat",
            Sink::HipChat(url(
                "http://127.0.0.1:9/v2/room/1/notification?auth_token=x",
            )),
        ),
        ("slack", Sink::Slack(url("http://127.0.0.1:9/slack"))),
        ("teams", Sink::Teams(url("http://127.0.0.1:9/teams"))),
        (
            "google_chat",
            Sink::GoogleChat(url("http://127.0.0.1:9/chat")),
        ),
        ("plain", Sink::Console),
    ]
}

/// What each kind of room is sent for `message`, pinned as `render__{case}__{format}`.
fn pin(case: &str, message: &Doc) {
    for (format, sink) in sinks() {
        pin_one(&format!("{case}__{format}"), &sink, message);
    }
}

fn pin_one(name: &str, sink: &Sink, message: &Doc) {
    match sink::body(sink, "backend", message) {
        sink::Body::Json(json) => insta::assert_json_snapshot!(name, json),
        sink::Body::Line(line) => insta::assert_snapshot!(name, line),
    }
}

fn person(name: &str, hipchat: Option<&str>, slack: Option<&str>) -> Reviewer {
    Reviewer {
        name: name.into(),
        hipchat: hipchat.map(str::to_owned),
        slack: slack.map(str::to_owned),
        ..Reviewer::default()
    }
}

/// A Cloud PR: acme/api #`n` by Ann, opened `hours` ago, 2 approvals required.
fn cloud(n: i64, title: &str, hours: i64) -> PullRequestView {
    PullRequestView {
        key: RepositoryKey::cloud(Some("{7b6d}"), "acme/api"),
        repository: "acme/api".into(),
        number: n,
        title: title.into(),
        url: Some(format!("https://bitbucket.org/acme/api/pull-requests/{n}")),
        author: "Ann Author".into(),
        author_as: person("Ann Author", Some("@ann"), Some("UANN")),
        created_on: now() - Duration::hours(hours),
        required_approvals: 2,
        ..PullRequestView::default()
    }
}

/// A Data Center PR: PROJ/web #`n`, no approval yet, a build running.
fn data_center(n: i64, title: &str, hours: i64) -> PullRequestView {
    PullRequestView {
        key: RepositoryKey::datacenter("bitbucket.example.com", 12),
        repository: "PROJ/web".into(),
        number: n,
        title: title.into(),
        url: Some(format!(
            "https://bitbucket.example.com/projects/PROJ/repos/web/pull-requests/{n}/overview"
        )),
        author: "dee.dev".into(),
        author_as: person("dee.dev", None, None),
        created_on: now() - Duration::hours(hours),
        required_approvals: 1,
        build_state: Some(BuildState::InProgress),
        ..PullRequestView::default()
    }
}

fn approved(mut pr: PullRequestView, names: &[String]) -> PullRequestView {
    pr.approved_by = names.to_vec();
    pr.approvals = names.len() as u32;
    pr
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|k| format!("Reviewer {k:03}")).collect()
}

fn owed(keys: &[&str]) -> Turn {
    Turn::Reviewers {
        owed: keys.iter().map(|k| UserKey::from(*k)).collect(),
    }
}

fn events(list: &[NotifyEvent]) -> BTreeSet<NotifyEvent> {
    list.iter().copied().collect()
}

#[test]
fn pr_news() {
    use NotifyEvent::*;
    let hostile = cloud(7, HOSTILE, 3);
    pin(
        "news_opened_hostile_no_reviewers",
        &message::render(&events(&[Opened]), &hostile),
    );
    let mut one = approved(
        cloud(8, "Add retries to the webhook client 🔁", 5),
        &names(1),
    );
    // Issue 23: who must act, named after the headline (mentions where mapped).
    one.waiting_for = vec![person("Bob Reviewer", Some("@bob"), Some("UBOB"))];
    one.turn = Some(owed(&["bob"]));
    pin(
        "news_approvals_one_reviewer",
        &message::render(&events(&[Approvals]), &one),
    );
    let mut many = approved(cloud(9, "Bump <serde> & friends", 5), &names(300));
    many.build_state = Some(BuildState::Successful);
    many.turn = Some(Turn::Merge);
    pin(
        "news_ready_300_reviewers",
        &message::render(&events(&[Approvals]), &many),
    );
    let mut changes = approved(cloud(10, "*Refactor* the _payments_ module", 5), &names(1));
    changes.changes_requested_by = vec!["Carol <QA>".into(), "@here".into()];
    changes.turn = Some(Turn::Author(AuthorReason::ChangesRequested));
    pin(
        "news_changes_requested",
        &message::render(&events(&[ChangesRequested]), &changes),
    );
    let mut failing = data_center(11, "<!channel> Migrate the build to Gradle 8", 26);
    failing.build_state = Some(BuildState::Failed);
    failing.failed_builds = vec![
        (
            "CI #9 <unit>".into(),
            Some("https://ci.example.com/job/9?a=1|2&b=(3)".into()),
        ),
        ("lint *strict*".into(), None),
    ];
    failing.turn = Some(Turn::Author(AuthorReason::BuildFailed));
    pin(
        "news_build_failed_data_center",
        &message::render(&events(&[BuildFailed]), &failing),
    );
    let mut fixed = data_center(12, "Fix flaky test", 2);
    fixed.build_state = Some(BuildState::Successful);
    pin(
        "news_build_fixed_data_center",
        &message::render(&events(&[BuildFailed, BuildRecovered]), &fixed),
    );
    let mut stopped = data_center(13, "Drop Java 8", 2);
    stopped.build_state = Some(BuildState::Stopped);
    stopped.url = None;
    pin(
        "news_opened_no_link_build_stopped",
        &message::render(&events(&[Opened]), &stopped),
    );
    pin(
        "news_merged",
        &message::render(&events(&[Merged, Approvals]), &hostile),
    );
    pin(
        "news_declined",
        &message::render(&events(&[Declined]), &one),
    );
    let mut owed_two = cloud(15, "Cache <the> tokens", 4);
    owed_two.waiting_for = vec![
        person("Bob Reviewer", Some("@bob"), Some("UBOB")),
        person("Dee <dev>", None, None),
    ];
    owed_two.turn = Some(owed(&["bob", "dee"]));
    pin(
        "news_needs_review_from_owed_reviewers",
        &message::render(&events(&[Opened]), &owed_two),
    );
    let mut tasks = approved(cloud(16, "Rotate keys", 6), &names(2));
    tasks.open_tasks = Some(1);
    tasks.turn = Some(Turn::Author(AuthorReason::OpenTasks));
    pin(
        "news_open_task_authors_turn",
        &message::render(&events(&[Approvals]), &tasks),
    );
    let mut huge = cloud(14, &"x".repeat(20_000), 1);
    huge.author = "y".repeat(5_000);
    pin(
        "news_clipped_fields",
        &message::render(&events(&[Opened]), &huge),
    );
}

/// A room's digest with both lists, requested reviewers mapped to chat mentions or not.
fn mixed() -> RoomDigest {
    let mut first = approved(cloud(1, HOSTILE, 80), &names(1));
    first.build_state = Some(BuildState::Failed);
    first.waiting_for = vec![
        person("Bob Reviewer", Some("@bob"), Some("UBOB")),
        person("Dee <dev>", None, None),
        person("Carol", Some("carol_r"), None),
    ];
    let mut second = data_center(2, "Add *metrics* & dashboards", 5);
    second.waiting_for = vec![person("Eve", None, Some("UEVE"))];
    let mut third = cloud(3, "Rework login_flow", 30);
    third.changes_requested_by = vec!["Frank".into()];
    third.build_state = Some(BuildState::InProgress);
    third.waiting_for = vec![person("Finn", Some("finn"), Some("UFINN"))];
    RoomDigest {
        waiting_review: vec![first, second],
        waiting_author: vec![third],
        review_total: 4,
        author_total: 1,
        ..RoomDigest::default()
    }
}

/// Mentions in every chat (issue 23): Bob has every chat id `[[users]]` can give (HipChat,
/// Slack, Google Chat, Teams), Carol none: each chat mentions Bob its own way (Teams with the
/// card's `msteams.entities`) and names Carol.
#[test]
fn mentions_in_every_chat() {
    use NotifyEvent::*;
    let mut pr = approved(cloud(11, "Add retries", 5), &names(0));
    pr.waiting_for = vec![
        Reviewer {
            google_chat: Some("123456789".into()),
            teams: Some("bob@acme.example".into()),
            ..person("Bob Reviewer", Some("@bob"), Some("UBOB"))
        },
        person("Carol Reviewer", None, None),
    ];
    pr.turn = Some(owed(&["bob", "carol"]));
    pin(
        "news_mentions_every_chat",
        &message::render(&events(&[Opened]), &pr),
    );
}

#[test]
fn digests() {
    let settings = SweepSettings::default();
    pin(
        "digest_all_clear",
        &digest::render("backend", &RoomDigest::default(), &settings, now()),
    );
    let mixed = mixed();
    pin(
        "digest_mixed",
        &digest::render("back_end *team*", &mixed, &settings, now()),
    );
    // The three groups by turn (issue 23): ready to merge names who can merge (the author, as a
    // chat mention where mapped).
    let mut ready = approved(cloud(8, "Ready *now* <b>", 12), &names(2));
    ready.turn = Some(Turn::Merge);
    let three = RoomDigest {
        ready_to_merge: vec![ready, approved(data_center(9, "DC ready", 4), &names(1))],
        merge_total: 3,
        ..mixed.clone()
    };
    pin(
        "digest_by_turn",
        &digest::render("backend", &three, &settings, now()),
    );
    let mut one = RoomDigest {
        waiting_review: vec![cloud(5, "Only one", 2)],
        review_total: 1,
        ..RoomDigest::default()
    };
    pin(
        "digest_one",
        &digest::render("backend", &one, &settings, now()),
    );
    one.waiting_review[0].waiting_for = (1..=300)
        .map(|k| person(&format!("Reviewer {k:03}"), None, None))
        .collect();
    pin(
        "digest_one_pr_300_waiting_reviewers",
        &digest::render("backend", &one, &settings, now()),
    );
    let mut sixty = RoomDigest::default();
    for n in 1..=60 {
        let mut pr = if n % 2 == 0 {
            cloud(
                n,
                &format!("Change {n}: update the <payment> adapters & tests"),
                n,
            )
        } else {
            data_center(n, &format!("*Story* PROJ-{n} 🚀"), n * 3)
        };
        pr.waiting_for = vec![person("Bob Reviewer", Some("bob"), Some("UBOB"))];
        sixty.waiting_review.push(pr);
    }
    sixty.review_total = 75;
    pin(
        "digest_sixty",
        &digest::render("backend", &sixty, &settings, now()),
    );
    // `/reviews` lists: a heading of its own, with or without the room.
    pin(
        "list_with_room",
        &digest::render_list(
            "2 pull requests you can review",
            Some("backend"),
            &mixed,
            &settings,
            now(),
        ),
    );
    pin(
        "list_without_room",
        &digest::render_list("Your 5 open pull requests", None, &mixed, &settings, now()),
    );
}

/// One person's `/reviews` (issue 23): the PRs on which they owe a review (a hostile title),
/// then "Your turn" with every reason it can be theirs; and the answer with only their turn,
/// and with nothing at all.
#[test]
fn personal_reviews() {
    let settings = SweepSettings::default();
    let mut owes = cloud(1, HOSTILE, 80);
    owes.turn = Some(owed(&["carol"]));
    owes.waiting_for = vec![person("Carol", Some("carol_r"), Some("UCAROL"))];
    let turn = |n: i64, turn: Turn| {
        let mut pr = cloud(n, &format!("Mine *{n}*"), n);
        pr.author = "Carol".into();
        pr.turn = Some(turn);
        pr
    };
    let mut changes = turn(2, Turn::Author(AuthorReason::ChangesRequested));
    changes.changes_requested_by = vec!["Frank".into()];
    let mut failed = approved(turn(3, Turn::Author(AuthorReason::BuildFailed)), &names(2));
    failed.build_state = Some(BuildState::Failed);
    let mut tasks = approved(turn(4, Turn::Author(AuthorReason::OpenTasks)), &names(2));
    tasks.open_tasks = Some(2);
    let mut stopped = turn(5, Turn::Author(AuthorReason::BuildStopped));
    stopped.build_state = Some(BuildState::Stopped);
    let mine = vec![
        changes,
        failed,
        tasks,
        stopped,
        turn(6, Turn::Author(AuthorReason::Draft)),
        approved(turn(7, Turn::Merge), &names(2)),
    ];
    pin(
        "reviews_personal",
        &digest::render_personal(
            "backend",
            std::slice::from_ref(&owes),
            &mine,
            &settings,
            now(),
        ),
    );
    pin(
        "reviews_personal_only_mine",
        &digest::render_personal("backend", &[], &mine[5..], &settings, now()),
    );
    pin(
        "reviews_personal_nothing",
        &digest::render_personal("backend", &[], &[], &settings, now()),
    );
}

#[test]
fn the_hipchat_mention_ping() {
    let m = digest::render("backend", &mixed(), &SweepSettings::default(), now());
    for (format, sink) in sinks() {
        let ping = sink::ping_body(&sink, &m);
        if format == "hipchat" {
            insta::assert_json_snapshot!("mention_ping__hipchat", ping.unwrap());
        } else {
            assert_eq!(ping, None, "{format}");
        }
    }
}

/// A backlog summary's parts as `sink` gets them: split by that chat's own measure and limit.
fn summary(sink: &Sink, heading: &str, items: &[Block]) -> Vec<(Doc, usize)> {
    let format = sink::format(sink);
    doc::summary(heading, items.to_vec(), |b| format.size(b), format.limit())
}

#[test]
fn backlog_summaries() {
    use NotifyEvent::*;
    let items: Vec<Block> = (1..=3)
        .map(|n| message::news(&events(&[Opened]), &cloud(n, HOSTILE, 1)).1)
        .collect();
    for (format, sink) in sinks() {
        let parts = summary(&sink, "3 pull requests changed:", &items);
        assert_eq!(parts.len(), 1);
        pin_one(&format!("summary_small__{format}"), &sink, &parts[0].0);
    }
    // 40 PRs with long titles and many approvers: more than one message can hold.
    let items: Vec<Block> = (1..=40)
        .map(|n| {
            let pr = approved(
                cloud(
                    n,
                    &format!("{n}: {}", "Refactor <the> *payment* adapters ".repeat(8)),
                    1,
                ),
                &names(12),
            );
            message::news(&events(&[Approvals]), &pr).1
        })
        .collect();
    for (format, sink) in sinks() {
        let parts = summary(
            &sink,
            "While this room was unreachable, 40 pull requests changed:",
            &items,
        );
        // 27,000 characters: more than HipChat, Slack and plain text take in one message; Teams
        // (28 KB) and Google Chat (32,000 bytes) take it whole.
        let whole = matches!(format, "teams" | "google_chat");
        assert_eq!(parts.len() == 1, whole, "{format}: {}", parts.len());
        assert_eq!(parts.iter().map(|(_, n)| n).sum::<usize>(), 40);
        for (i, (part, listed)) in parts.iter().enumerate() {
            let name = format!("summary_split_part_{}_of_{}", i + 1, parts.len());
            pin_one(&format!("{name}__{format}"), &sink, part);
            insta::assert_snapshot!(format!("{name}__{format}__listed"), listed.to_string());
        }
    }
}

/// Each format's own markup, and how to read it back once: `Some(text)` where `rendered` is
/// exactly one escaping of `text`, `None` where it holds markup of its own.
struct Grammar {
    name: &'static str,
    /// The text `rendered` is one escaping of, or `None` if it holds markup of its own.
    unescape: fn(&str) -> Option<String>,
}

/// HTML: no tag may open, every `&` starts one of the five entities; decoded once.
fn html_once(s: &str) -> Option<String> {
    if s.contains('<') || s.contains('>') || s.contains('"') {
        return None;
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (entity, c) = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&#39;", '\''),
        ]
        .into_iter()
        .find(|(e, _)| tail.starts_with(e))?;
        out.push(c);
        rest = &tail[entity.len()..];
    }
    out.push_str(rest);
    Some(out)
}

/// Slack mrkdwn: no `<` or `>` (links, mentions), `&` only in `&amp;` `&lt;` `&gt;`.
fn slack_once(s: &str) -> Option<String> {
    if s.contains('<') || s.contains('>') {
        return None;
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (entity, c) = [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>')]
            .into_iter()
            .find(|(e, _)| tail.starts_with(e))?;
        out.push(c);
        rest = &tail[entity.len()..];
    }
    out.push_str(rest);
    Some(out)
}

/// Teams (CommonMark): every markup character behind a backslash; the backslashes removed once.
fn teams_once(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '*' | '_' | '[' | ']' | '(' | ')' | '#' | '<' | '>' | '`' | '~' | '|' | '&' | '!'
            | '{' | '}' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Google Chat: no markup character at all; the look-alikes mapped back once.
fn google_chat_once(s: &str) -> Option<String> {
    if s.contains(['<', '>', '*', '_', '~', '`']) {
        return None;
    }
    Some(
        s.replace("&\u{2060}", "&")
            .replace('‹', "<")
            .replace('›', ">")
            .replace('∗', "*")
            .replace('ˍ', "_")
            .replace('∼', "~")
            .replace('ˋ', "`"),
    )
}

/// The label of the first link in `rendered`, in the format's own link syntax.
fn link_label(format: &str, rendered: &str) -> String {
    let (open, close) = match format {
        "hipchat" => ("\">", "</a>"),
        "slack" | "google_chat" => ("|", ">"),
        "teams" => ("[", "]("),
        _ => unreachable!(),
    };
    let start = rendered.find(open).unwrap() + open.len();
    let end = start + rendered[start..].find(close).unwrap();
    rendered[start..end].to_owned()
}

/// A title full of every format's special characters is escaped exactly once in each: nothing in
/// it opens markup, and undoing the format's escaping once gives the title back.
#[test]
fn every_user_string_is_escaped_exactly_once() {
    let title = "<b>x</b> &amp; & &lt; \"q\" 'a' *s* _u_ ~t~ `c` [l](u) <!here> <@U1> \
                 <users/all> <https://e|x> @all # > | {{DATE(x)}} \\ ! 🚀";
    let m = message::render(&events(&[NotifyEvent::Opened]), &cloud(7, title, 1));
    let grammars = [
        Grammar {
            name: "hipchat",
            unescape: html_once,
        },
        Grammar {
            name: "slack",
            unescape: slack_once,
        },
        Grammar {
            name: "teams",
            unescape: teams_once,
        },
        Grammar {
            name: "google_chat",
            unescape: google_chat_once,
        },
    ];
    for grammar in grammars {
        let (_, sink) = sinks()
            .into_iter()
            .find(|(name, _)| *name == grammar.name)
            .unwrap();
        let sink::Body::Json(body) = sink::body(&sink, "backend", &m) else {
            panic!("{}: not JSON", grammar.name);
        };
        let rendered = match grammar.name {
            "hipchat" => body["message"].as_str().unwrap().to_owned(),
            "slack" | "google_chat" => body["text"].as_str().unwrap().to_owned(),
            "teams" => body["attachments"][0]["content"]["body"][1]["text"]
                .as_str()
                .unwrap()
                .to_owned(),
            _ => unreachable!(),
        };
        let label = link_label(grammar.name, &rendered);
        assert_eq!(
            (grammar.unescape)(&label).as_deref(),
            Some(title),
            "{}: {label}",
            grammar.name
        );
    }
    // Plain text (console, logs) is the title as typed.
    let sink::Body::Line(line) = sink::body(&Sink::Console, "r", &m) else {
        panic!("console: not a line");
    };
    assert!(line.contains(title), "{line}");
    // Slack's fallback (shown where attachments cannot be): escaped once as well.
    let Some((_, slack)) = sinks().into_iter().find(|(n, _)| *n == "slack") else {
        unreachable!()
    };
    let sink::Body::Json(body) = sink::body(&slack, "r", &m) else {
        unreachable!()
    };
    let fallback = body["attachments"][0]["fallback"].as_str().unwrap();
    let start = fallback.find(": ").unwrap() + 2;
    let end = fallback.find(" (acme/api #7)").unwrap();
    assert_eq!(slack_once(&fallback[start..end]).as_deref(), Some(title));
}

/// A Slack room through the Web API (`slack_channel`, issue 25): a PR's first message is the
/// Slack formatter's payload with its channel and, in its metadata, the key it is found by again;
/// its edits the same with the message's `ts`; a superseded digest is one line, its attachment
/// removed, the newer digest's time in each reader's zone (UTC as the fallback).
#[test]
fn the_slack_web_api_bodies() {
    use pr_reminder::notify::slack_api;
    let hostile = message::render(&events(&[NotifyEvent::Opened]), &cloud(7, HOSTILE, 3));
    insta::assert_json_snapshot!(
        "render__slack_api__new_message",
        slack_api::new_message("C0123ABCD", &hostile, "reviews|cloud/{5e1f}#7")
    );
    let ready = approved(cloud(8, "Add retries", 5), &names(2));
    insta::assert_json_snapshot!(
        "render__slack_api__update",
        slack_api::update(
            "C0123ABCD",
            "1796000000.000100",
            &message::render(&events(&[NotifyEvent::Approvals]), &ready)
        )
    );
    insta::assert_json_snapshot!(
        "render__slack_api__thread_reply",
        slack_api::reply(
            "C0123ABCD",
            "1796000000.000100",
            &Doc::lines(doc::Color::Green, ["Ready to merge <now> & then"])
        )
    );
    insta::assert_json_snapshot!(
        "render__slack_api__superseded",
        slack_api::superseded("C0123ABCD", "1796000000.000100", "1796003600.000200")
    );
}
