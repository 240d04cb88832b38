//! Rendered messages in the chats that need more than a string: Teams' Adaptive Card, Google
//! Chat's text with its colour emoji, 32,000-byte cut and thread URL; messages stored by the
//! release before the chat document.

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use crate::config::SweepSettings;
use crate::domain::{BuildState, NotifyEvent, RoomDigest};
use crate::notify::doc::{Color, Doc, Stored};
use crate::notify::format::google_chat::{self, MAX_TEXT_BYTES};
use crate::notify::format::teams;
use crate::notify::test_support::{events, pr};
use crate::notify::{digest, message};

fn card(blocks: Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": blocks,
            },
        }],
    })
}

#[test]
fn teams_a_build_failure_as_a_card() {
    let mut p = pr("Fix the flaky test");
    p.build_state = Some(BuildState::Failed);
    p.failed_builds
        .push(("CI #9".into(), Some("https://ci/9".into())));
    let m = message::render(&events(&[NotifyEvent::BuildFailed]), &p);
    assert_eq!(
            teams::markdown(&m),
            "Build failed\n\n\
             [Fix the flaky test](https://bitbucket.org/acme/api/pull-requests/7) (acme/api \\#7) by Ann\n\n\
             1/2 approvals: Bob · build FAILED: [CI \\#9](https://ci/9)"
        );
    assert_eq!(
        teams::body(&m),
        card(json!([
            {"type": "TextBlock", "text": "Build failed", "wrap": true, "weight": "bolder", "color": "attention"},
            {"type": "TextBlock", "text": "[Fix the flaky test](https://bitbucket.org/acme/api/pull-requests/7) (acme/api \\#7) by Ann", "wrap": true},
            {"type": "TextBlock", "text": "1/2 approvals: Bob · build FAILED: [CI \\#9](https://ci/9)", "wrap": true},
        ]))
    );
}

#[test]
fn teams_a_digest_as_a_card() {
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
    let mut old = pr("Old one");
    old.created_on = now - chrono::Duration::hours(80);
    old.approvals = 1;
    old.build_state = Some(BuildState::Failed);
    let mut waiting = pr("Needs work");
    waiting.number = 8;
    waiting.url = None;
    waiting.created_on = now - chrono::Duration::hours(5);
    waiting.approved_by = vec![];
    waiting.changes_requested_by = vec!["Carol".into()];
    let d = RoomDigest {
        waiting_review: vec![old],
        waiting_author: vec![waiting],
        review_total: 3,
        author_total: 1,
        ..RoomDigest::default()
    };
    let m = digest::render("back_end", &d, &SweepSettings::default(), now);
    assert_eq!(m.color, Color::Red);
    assert_eq!(
        teams::body(&m),
        card(json!([
            {"type": "TextBlock", "text": "3 pull requests waiting for review, 1 waiting on their author \\(back\\_end\\)", "wrap": true, "weight": "bolder", "color": "attention"},
            {"type": "TextBlock", "text": "- [Old one](https://bitbucket.org/acme/api/pull-requests/7) (acme/api \\#7) by Ann · 1/2 approvals \\(Bob\\) · **3d 8h old** · **build FAILED**", "wrap": true},
            {"type": "TextBlock", "text": "and 2 more", "wrap": true},
            {"type": "TextBlock", "text": "**Waiting on the author**", "wrap": true},
            {"type": "TextBlock", "text": "- Needs work (acme/api \\#8) by Ann · 0/2 approvals · changes requested by Carol · 5h old", "wrap": true},
        ]))
    );
}

#[test]
fn teams_hostile_titles_stay_text() {
    for (title, inert) in [
        ("[x](https://evil)", "\\[x\\]\\(https://evil\\)"),
        ("<users/all>", "\\<users/all\\>"),
        ("*bold* _it_", "\\*bold\\* \\_it\\_"),
        ("<!channel>", "\\<\\!channel\\>"),
        (
            "&amp; {{DATE(2026-01-01T00:00:00Z)}}",
            "\\&amp; \\{\\{DATE\\(2026\\-01\\-01T00:00:00Z\\)\\}\\}",
        ),
        (
            "# h1\n- item\r\n> quote `code` ~x~ a|b \\",
            "\\# h1 - item  \\> quote \\`code\\` \\~x\\~ a\\|b \\\\",
        ),
        ("- not a list", "\\- not a list"),
        ("12. not a list either, 1.5", "12\\. not a list either, 1.5"),
    ] {
        let inert = inert.replace("\\-01\\-01", "-01-01");
        let m = message::render(&events(&[NotifyEvent::Opened]), &pr(title));
        assert_eq!(
            teams::markdown(&m).split("\n\n").nth(1).unwrap(),
            format!(
                "[{inert}](https://bitbucket.org/acme/api/pull-requests/7) (acme/api \\#7) by Ann"
            )
        );
    }
    // A hostile room name, repository and author, and a URL that would end the link early.
    let mut p = pr("t");
    p.repository = "a*b/c_d".into();
    p.author = "[me](https://evil)".into();
    p.url = Some("https://bb/x) [y](https://evil".into());
    let m = message::render(&events(&[NotifyEvent::Opened]), &p);
    assert_eq!(
            teams::markdown(&m).split("\n\n").nth(1).unwrap(),
            "[t](https://bb/x%29%20%5By%5D%28https://evil) (a\\*b/c\\_d \\#7) by \\[me\\]\\(https://evil\\)"
        );
}

#[test]
fn rows_stored_before_teams_still_render() {
    let stored = r#"{"color":"yellow","notify":true,"html":"<b>x</b>","slack":"*x*","text":"2 pull requests waiting (r)\n  - [a](b) <https://bb/1>"}"#;
    let m: Doc = serde_json::from_str::<Stored>(stored).unwrap().into();
    assert_eq!(
        teams::body(&m)["attachments"][0]["content"]["body"],
        json!([
            {"type": "TextBlock", "text": "2 pull requests waiting \\(r\\)", "wrap": true, "weight": "bolder", "color": "warning"},
            {"type": "TextBlock", "text": "  \\- \\[a\\]\\(b\\) \\<https://bb/1\\>", "wrap": true},
        ])
    );
}

#[test]
fn google_chat_pr_news_as_text() {
    let mut p = pr("Fix <script> & co");
    p.approved_by.push("Carl".into());
    p.build_state = Some(BuildState::Successful);
    let m = message::render(&events(&[NotifyEvent::Approvals]), &p);
    assert_eq!(
        google_chat::body(&m),
        json!({"text": "✅ *Ready to merge*: <https://bitbucket.org/acme/api/pull-requests/7|Fix ‹script› &\u{2060} co> (acme/api #7) by Ann\n2/2 approvals: Bob, Carl · build passed"})
    );
    let mut p = pr("Failing");
    p.build_state = Some(BuildState::Failed);
    p.failed_builds
        .push(("CI #9".into(), Some("https://ci/9?a=1|2".into())));
    p.failed_builds.push(("lint".into(), None));
    let m = message::render(&events(&[NotifyEvent::BuildFailed]), &p);
    assert_eq!(
            google_chat::text(&m),
            "🔴 *Build failed*: <https://bitbucket.org/acme/api/pull-requests/7|Failing> (acme/api #7) by Ann\n\
             1/2 approvals: Bob · build FAILED: <https://ci/9?a=1%7C2|CI #9>, lint"
        );
    let m = message::render(&events(&[NotifyEvent::Merged]), &p);
    assert!(
        google_chat::text(&m).starts_with("*Merged*: "),
        "{}",
        google_chat::text(&m)
    );
}

#[test]
fn google_chat_a_digest_as_text() {
    let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
    let mut old = pr("Old_one");
    old.created_on = now - chrono::Duration::hours(80);
    old.approvals = 1;
    old.build_state = Some(BuildState::InProgress);
    let mut fresh = pr("Fresh");
    fresh.number = 8;
    fresh.url = None;
    fresh.created_on = now - chrono::Duration::hours(5);
    fresh.approved_by = vec![];
    fresh.waiting_for = vec![crate::domain::Reviewer {
        name: "<users/all>".into(),
        ..Default::default()
    }];
    let d = RoomDigest {
        waiting_review: vec![old, fresh],
        review_total: 2,
        ..RoomDigest::default()
    };
    let m = digest::render("back*end", &d, &SweepSettings::default(), now);
    assert_eq!(
            google_chat::text(&m),
            "🔴 *2 pull requests waiting for review* (back∗end)\n\
             • <https://bitbucket.org/acme/api/pull-requests/7|Oldˍone> (acme/api #7) by Ann · 1/2 approvals (Bob) · *3d 8h old* · *build running*\n\
             • Fresh (acme/api #8) by Ann · 0/2 approvals · 5h old · waiting for ‹users/all›"
        );
    let clear = digest::render("r", &RoomDigest::default(), &SweepSettings::default(), now);
    assert_eq!(
        google_chat::text(&clear),
        "✅ *All clear: no pull request is waiting for review* (r)"
    );
}

#[test]
fn google_chat_hostile_titles_stay_text() {
    for (title, inert) in [
        ("[x](https://evil)", "[x](https://evil)"),
        ("<https://evil|Click me>", "‹https://evil|Click me›"),
        ("<users/all>", "‹users/all›"),
        ("*bold* _it_ ~s~ `c`", "∗bold∗ ˍitˍ ∼s∼ ˋcˋ"),
        ("<!channel>", "‹!channel›"),
        (
            "&amp; &lt;users/all&gt;",
            "&\u{2060}amp; &\u{2060}lt;users/all&\u{2060}gt;",
        ),
        ("one\n* two\r\n```", "one ∗ two  ˋˋˋ"),
    ] {
        let m = message::render(&events(&[NotifyEvent::Opened]), &pr(title));
        assert_eq!(
                google_chat::markup(&m),
                format!(
                    "*Needs review*: <https://bitbucket.org/acme/api/pull-requests/7|{inert}> (acme/api #7) by Ann\n1/2 approvals: Bob"
                )
            );
    }
    // A URL that would end the link early.
    let mut p = pr("t");
    p.url = Some("https://bb/x|<users/all>".into());
    let m = message::render(&events(&[NotifyEvent::Opened]), &p);
    let markup = google_chat::markup(&m);
    assert!(
        markup.starts_with("*Needs review*: <https://bb/x%7C%3Cusers/all%3E|t> "),
        "{markup}"
    );
}

#[test]
fn google_chat_long_texts_are_cut_at_32000_bytes() {
    let doc = |color: Color, text: &str| Doc::lines(color, [text]);
    // 3-byte characters so that the limit falls inside one.
    let t = google_chat::text(&doc(Color::Gray, &"€".repeat(20_000)));
    assert!(t.len() <= MAX_TEXT_BYTES, "{}", t.len());
    // 32,000 - 4 bytes for "\n…" = 31,996, down to a boundary: 10,665 × 3 bytes.
    assert_eq!(t.len(), 31_995 + 4);
    assert!(t.ends_with("€\n…"));
    assert_eq!(t.matches('€').count(), 10_665);
    // Exactly at the limit: untouched.
    let a = "a".repeat(MAX_TEXT_BYTES);
    assert_eq!(google_chat::text(&doc(Color::Gray, &a)), a);
    let t = google_chat::text(&doc(Color::Gray, &format!("{a}a")));
    assert_eq!(t.len(), MAX_TEXT_BYTES);
    assert_eq!(&t[t.len() - 7..], "aaa\n…");
    // The emoji counts too.
    let t = google_chat::text(&doc(Color::Red, &"a".repeat(MAX_TEXT_BYTES - 5)));
    assert_eq!(t.len(), MAX_TEXT_BYTES);
    assert!(!t.ends_with('…'));
}

#[test]
fn google_chat_thread_urls() {
    assert_eq!(
            google_chat::thread_url(
                "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=AIza-k_1&token=t%3Dx",
                "acme/api#7 pr"
            ),
            "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=AIza-k_1&token=t%3Dx\
             &threadKey=acme%2Fapi%237%20pr&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
        );
    assert_eq!(
            google_chat::thread_url(
                "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=k&threadKey=old&token=t&messageReplyOption=X",
                "pr-7"
            ),
            "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=k&token=t\
             &threadKey=pr-7&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
        );
    assert_eq!(
        google_chat::thread_url("http://127.0.0.1:9/hook", "é&="),
        "http://127.0.0.1:9/hook?threadKey=%C3%A9%26%3D\
             &messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
    );
}

#[test]
fn rows_stored_before_google_chat_still_render() {
    let stored = r#"{"color":"red","notify":true,"html":"","slack":"","text":"3 waiting\n  - *a* <https://bb/1>"}"#;
    let m: Doc = serde_json::from_str::<Stored>(stored).unwrap().into();
    assert_eq!(
        google_chat::text(&m),
        "🔴 3 waiting\n  - ∗a∗ ‹https://bb/1›"
    );
}
