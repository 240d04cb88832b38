//! The request body for a Microsoft Teams Workflows webhook ("when a Teams webhook request is
//! received"): a `message` carrying one Adaptive Card. The flow fails a body without
//! `attachments`, and Office 365 connector MessageCards are retired, so this is the only shape.

use serde_json::{json, Value};

use super::message::{escape_teams, Color, Message};

/// Adaptive Card version: 1.4 is what Teams renders everywhere (desktop, web, mobile).
const CARD_VERSION: &str = "1.4";

/// The TextBlock `color` standing in for a message's colour: Teams has no free colours, only
/// these host-themed ones.
pub fn text_color(color: Color) -> &'static str {
    match color {
        Color::Red => "attention",
        Color::Green => "good",
        Color::Yellow => "warning",
        Color::Purple => "accent",
        Color::Gray => "default",
    }
}

/// The POST body for `message`: its first paragraph as a bold heading coloured by
/// `message.color`, each further paragraph (`\n\n`-separated in `message.teams`) as a wrapped
/// TextBlock. A message stored before Teams existed (no `teams` rendering) is shown from its plain
/// text, escaped.
pub fn body(message: &Message) -> Value {
    let markdown = if message.teams.is_empty() {
        message
            .text
            .lines()
            .map(escape_teams)
            .collect::<Vec<_>>()
            .join("\n\n")
    } else {
        message.teams.clone()
    };
    let mut paragraphs = markdown.split("\n\n").filter(|p| !p.trim().is_empty());
    let mut blocks = vec![json!({
        "type": "TextBlock",
        "text": paragraphs.next().unwrap_or_default(),
        "wrap": true,
        "weight": "bolder",
        "color": text_color(message.color),
    })];
    blocks.extend(paragraphs.map(|p| {
        json!({
            "type": "TextBlock",
            "text": p,
            "wrap": true,
        })
    }));
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": CARD_VERSION,
                "body": blocks,
            },
        }],
    })
}

#[cfg(test)]
mod tests {

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::config::SweepSettings;
    use crate::domain::{NotifyEvent, RoomDigest};
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
    fn a_build_failure_as_a_card() {
        let mut p = pr("Fix the flaky test");
        p.build_state = Some("FAILED".into());
        p.failed_builds
            .push(("CI #9".into(), Some("https://ci/9".into())));
        let m = message::render(&events(&[NotifyEvent::BuildFailed]), &p);
        assert_eq!(
            m.teams,
            "Build failed\n\n\
             [Fix the flaky test](https://bitbucket.org/acme/api/pull-requests/7) (acme/api \\#7) by Ann\n\n\
             1/2 approvals: Bob · build FAILED: [CI \\#9](https://ci/9)"
        );
        assert_eq!(
            body(&m),
            card(json!([
                {"type": "TextBlock", "text": "Build failed", "wrap": true, "weight": "bolder", "color": "attention"},
                {"type": "TextBlock", "text": "[Fix the flaky test](https://bitbucket.org/acme/api/pull-requests/7) (acme/api \\#7) by Ann", "wrap": true},
                {"type": "TextBlock", "text": "1/2 approvals: Bob · build FAILED: [CI \\#9](https://ci/9)", "wrap": true},
            ]))
        );
    }

    #[test]
    fn a_digest_as_a_card() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let mut old = pr("Old one");
        old.created_on = now - chrono::Duration::hours(80);
        old.approvals = 1;
        old.build_state = Some("FAILED".into());
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
        };
        let m = digest::render("back_end", &d, &SweepSettings::default(), now);
        assert_eq!(m.color, Color::Red);
        assert_eq!(
            body(&m),
            card(json!([
                {"type": "TextBlock", "text": "3 pull requests waiting for review, 1 waiting on their author \\(back\\_end\\)", "wrap": true, "weight": "bolder", "color": "attention"},
                {"type": "TextBlock", "text": "- [Old one](https://bitbucket.org/acme/api/pull-requests/7) (acme/api \\#7) by Ann · 1/2 approvals \\(Bob\\) · **3d 8h old** · **build FAILED**", "wrap": true},
                {"type": "TextBlock", "text": "and 2 more", "wrap": true},
                {"type": "TextBlock", "text": "**Waiting on author (changes requested)**", "wrap": true},
                {"type": "TextBlock", "text": "- Needs work (acme/api \\#8) by Ann · 0/2 approvals · changes requested by Carol · 5h old", "wrap": true},
            ]))
        );
    }

    #[test]
    fn hostile_titles_stay_text() {
        for (title, escaped) in [
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
            let escaped = escaped.replace("\\-01\\-01", "-01-01");
            assert_eq!(escape_teams(title), escaped, "{title}");
            let m = message::render(&events(&[NotifyEvent::Opened]), &pr(title));
            assert_eq!(
                m.teams.split("\n\n").nth(1).unwrap(),
                format!(
                    "[{escaped}](https://bitbucket.org/acme/api/pull-requests/7) (acme/api \\#7) by Ann"
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
            m.teams.split("\n\n").nth(1).unwrap(),
            "[t](https://bb/x%29%20%5By%5D%28https://evil) (a\\*b/c\\_d \\#7) by \\[me\\]\\(https://evil\\)"
        );
    }

    #[test]
    fn rows_stored_before_teams_still_render() {
        let stored = r#"{"color":"yellow","notify":true,"html":"<b>x</b>","slack":"*x*","text":"2 pull requests waiting (r)\n  - [a](b) <https://bb/1>"}"#;
        let m: Message = serde_json::from_str(stored).unwrap();
        assert_eq!((m.teams.as_str(), m.google_chat.as_str()), ("", ""));
        assert_eq!(
            body(&m)["attachments"][0]["content"]["body"],
            json!([
                {"type": "TextBlock", "text": "2 pull requests waiting \\(r\\)", "wrap": true, "weight": "bolder", "color": "warning"},
                {"type": "TextBlock", "text": "  \\- \\[a\\]\\(b\\) \\<https://bb/1\\>", "wrap": true},
            ])
        );
    }
}
