//! The request body and URL for a Google Chat incoming webhook: a text message (`{"text": …}`),
//! cut to Google's 32,000-byte limit, posted into one thread per PR.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::message::{escape_google_chat, Color, Message};

/// Google Chat's limit on a message's text, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 32_000;

/// What ends a text that had to be cut.
const CUT_MARKER: &str = "\n…";

/// RFC 3986 unreserved characters stay, everything else in a query value is encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Text messages have no colour, so an emoji in front stands for it: 🔴 red (failing build,
/// escalated digest), ✅ green (ready, fixed, all clear), 🟡 yellow (needs review), 🟣 purple
/// (changes requested); gray (merged, declined, answers) has none.
pub fn color_emoji(color: Color) -> Option<&'static str> {
    match color {
        Color::Red => Some("🔴"),
        Color::Green => Some("✅"),
        Color::Yellow => Some("🟡"),
        Color::Purple => Some("🟣"),
        Color::Gray => None,
    }
}

/// The message's text with its colour emoji in front, cut to `MAX_TEXT_BYTES`. A message stored
/// before Google Chat existed (no `google_chat` rendering) is shown from its plain text, escaped.
pub fn text(message: &Message) -> String {
    let rendered = if message.google_chat.is_empty() {
        message
            .text
            .lines()
            .map(escape_google_chat)
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        message.google_chat.clone()
    };
    let full = match color_emoji(message.color) {
        Some(emoji) => format!("{emoji} {rendered}"),
        None => rendered,
    };
    cut(full, MAX_TEXT_BYTES)
}

/// The POST body for `message`.
pub fn body(message: &Message) -> Value {
    json!({ "text": text(message) })
}

/// `text` cut to at most `max` bytes on a character boundary, ending with `\n…` if it was cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max - CUT_MARKER.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(CUT_MARKER);
    text
}

/// The webhook URL with `threadKey=<thread_key>` and
/// `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD`, so every message with the same key
/// lands in one thread (a new one the first time). The URL's own parameters (`key`, `token`) are
/// kept as they are; a `threadKey` or `messageReplyOption` already in it is replaced.
pub fn thread_url(webhook_url: &str, thread_key: &str) -> String {
    let (url, fragment) = match webhook_url.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (webhook_url, None),
    };
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default();
            !p.is_empty() && name != "threadKey" && name != "messageReplyOption"
        })
        .map(str::to_owned)
        .collect();
    params.push(format!(
        "threadKey={}",
        utf8_percent_encode(thread_key, QUERY_VALUE)
    ));
    params.push("messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD".to_owned());
    let mut out = format!("{path}?{}", params.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests {

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::config::SweepSettings;
    use crate::domain::{NotifyEvent, RoomDigest};
    use crate::notify::test_support::{events, pr};
    use crate::notify::{digest, message};

    #[test]
    fn pr_news_as_text() {
        let mut p = pr("Fix <script> & co");
        p.approved_by.push("Carl".into());
        p.build_state = Some("SUCCESSFUL".into());
        let m = message::render(&events(&[NotifyEvent::Approvals]), &p);
        assert_eq!(
            body(&m),
            json!({"text": "✅ *Ready to merge*: <https://bitbucket.org/acme/api/pull-requests/7|Fix ‹script› &\u{2060} co> (acme/api #7) by Ann\n2/2 approvals: Bob, Carl · build passed"})
        );
        let mut p = pr("Failing");
        p.build_state = Some("FAILED".into());
        p.failed_builds
            .push(("CI #9".into(), Some("https://ci/9?a=1|2".into())));
        p.failed_builds.push(("lint".into(), None));
        let m = message::render(&events(&[NotifyEvent::BuildFailed]), &p);
        assert_eq!(
            text(&m),
            "🔴 *Build failed*: <https://bitbucket.org/acme/api/pull-requests/7|Failing> (acme/api #7) by Ann\n\
             1/2 approvals: Bob · build FAILED: <https://ci/9?a=1%7C2|CI #9>, lint"
        );
        let m = message::render(&events(&[NotifyEvent::Merged]), &p);
        assert!(text(&m).starts_with("*Merged*: "), "{}", text(&m));
    }

    #[test]
    fn a_digest_as_text() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let mut old = pr("Old_one");
        old.created_on = now - chrono::Duration::hours(80);
        old.approvals = 1;
        old.build_state = Some("INPROGRESS".into());
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
            text(&m),
            "🔴 *2 pull requests waiting for review* (back∗end)\n\
             • <https://bitbucket.org/acme/api/pull-requests/7|Oldˍone> (acme/api #7) by Ann · 1/2 approvals (Bob) · *3d 8h old* · *build running*\n\
             • Fresh (acme/api #8) by Ann · 0/2 approvals · 5h old · waiting for ‹users/all›"
        );
        let clear = digest::render("r", &RoomDigest::default(), &SweepSettings::default(), now);
        assert_eq!(
            text(&clear),
            "✅ *All clear: no pull request is waiting for review* (r)"
        );
    }

    #[test]
    fn hostile_titles_stay_text() {
        for (title, escaped) in [
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
            assert_eq!(escape_google_chat(title), escaped, "{title}");
            let m = message::render(&events(&[NotifyEvent::Opened]), &pr(title));
            assert_eq!(
                m.google_chat,
                format!(
                    "*Needs review*: <https://bitbucket.org/acme/api/pull-requests/7|{escaped}> (acme/api #7) by Ann\n1/2 approvals: Bob"
                )
            );
        }
        // A URL that would end the link early.
        let mut p = pr("t");
        p.url = Some("https://bb/x|<users/all>".into());
        let m = message::render(&events(&[NotifyEvent::Opened]), &p);
        assert!(
            m.google_chat
                .starts_with("*Needs review*: <https://bb/x%7C%3Cusers/all%3E|t> "),
            "{}",
            m.google_chat
        );
    }

    #[test]
    fn long_texts_are_cut_at_32000_bytes() {
        let mut m = message::render(&events(&[NotifyEvent::Opened]), &pr("t"));
        m.color = Color::Gray;
        // 3-byte characters so that the limit falls inside one.
        m.google_chat = "€".repeat(20_000);
        let t = text(&m);
        assert!(t.len() <= MAX_TEXT_BYTES, "{}", t.len());
        // 32,000 - 4 bytes for "\n…" = 31,996, down to a boundary: 10,665 × 3 bytes.
        assert_eq!(t.len(), 31_995 + 4);
        assert!(t.ends_with("€\n…"));
        assert_eq!(t.matches('€').count(), 10_665);
        // Exactly at the limit: untouched.
        m.google_chat = "a".repeat(MAX_TEXT_BYTES);
        assert_eq!(text(&m), "a".repeat(MAX_TEXT_BYTES));
        m.google_chat.push('a');
        let t = text(&m);
        assert_eq!(t.len(), MAX_TEXT_BYTES);
        assert_eq!(&t[t.len() - 7..], "aaa\n…");
        // The emoji counts too.
        m.color = Color::Red;
        m.google_chat = "a".repeat(MAX_TEXT_BYTES - 5);
        assert_eq!(text(&m).len(), MAX_TEXT_BYTES);
        assert!(!text(&m).ends_with('…'));
    }

    #[test]
    fn thread_urls() {
        assert_eq!(
            thread_url(
                "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=AIza-k_1&token=t%3Dx",
                "acme/api#7 pr"
            ),
            "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=AIza-k_1&token=t%3Dx\
             &threadKey=acme%2Fapi%237%20pr&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
        );
        assert_eq!(
            thread_url(
                "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=k&threadKey=old&token=t&messageReplyOption=X",
                "pr-7"
            ),
            "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=k&token=t\
             &threadKey=pr-7&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
        );
        assert_eq!(
            thread_url("http://127.0.0.1:9/hook", "é&="),
            "http://127.0.0.1:9/hook?threadKey=%C3%A9%26%3D\
             &messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
        );
    }

    #[test]
    fn rows_stored_before_google_chat_still_render() {
        let stored = r#"{"color":"red","notify":true,"html":"","slack":"","text":"3 waiting\n  - *a* <https://bb/1>"}"#;
        let m: Message = serde_json::from_str(stored).unwrap();
        assert_eq!(text(&m), "🔴 3 waiting\n  - ∗a∗ ‹https://bb/1›");
    }
}
