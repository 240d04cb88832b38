//! Slack mrkdwn, for Slack and the Slack-compatible chats (Mattermost, Rocket.Chat): the incoming
//! webhook payload `{text, attachments: [{color, fallback}]}` and the slash command's ephemeral
//! answer. Slack asks for exactly `&`, `<` and `>` to be escaped in message text
//! (api.slack.com/reference/surfaces/formatting#escaping); links are `<url|label>`, mentions
//! `<@U…>`.

use serde_json::{json, Value};

use super::plain;
use crate::notify::doc::{Block, Color, Doc, Person, Rendered};

/// The most text one message carries, in characters (lists are cut to it with "and N more"; a
/// backlog summary is split by it).
pub const MAX_TEXT_CHARS: usize = 10_000;

/// An `#rrggbb` colour for an attachment's `color`.
pub fn color(color: Color) -> &'static str {
    match color {
        Color::Yellow => "#f2c744",
        Color::Green => "#2eb67d",
        Color::Red => "#e01e5a",
        Color::Purple => "#7c3aed",
        Color::Gray => "#9ca3af",
    }
}

/// The incoming webhook body: the text, and an attachment with the colour and a plain-text
/// `fallback` (shown where attachments cannot be; Slack still reads `<...>` in it as links and
/// mentions, so it is escaped too).
pub fn webhook(doc: &Doc) -> Value {
    let (text, shown) = render(doc);
    json!({
        "text": text,
        "attachments": [{
            "color": color(doc.color),
            // The same PRs as the text.
            "fallback": escape(&plain::text(&doc.cut(&shown))),
        }],
    })
}

/// A slash command's answer, seen only by the person who asked
/// (api.slack.com/interactivity/slash-commands#responding_to_commands).
pub fn answer(doc: &Doc) -> Value {
    json!({"response_type": "ephemeral", "text": text(doc)})
}

/// The document as mrkdwn.
pub fn text(doc: &Doc) -> String {
    render(doc).0
}

/// How many items of each list the text shows.
pub fn shown(doc: &Doc) -> Vec<usize> {
    render(doc).1
}

/// The mrkdwn, and how many items of each list it shows.
fn render(doc: &Doc) -> (String, Vec<usize>) {
    super::render::<Mrkdwn>(doc)
}

/// What `block` takes in a message, in characters.
pub fn size(block: &Block) -> usize {
    super::block_size(block, text, super::chars)
}

/// Slack's mrkdwn (`super::Markup`).
struct Mrkdwn;

impl super::Markup for Mrkdwn {
    fn escape(text: &str) -> String {
        escape(text)
    }

    fn strong(inner: &str) -> String {
        format!("*{inner}*")
    }

    /// `~text~` (docs.slack.dev/messaging/formatting-message-text, "Visual styles": strike).
    fn struck(inner: &str) -> String {
        format!("~{inner}~")
    }

    fn link(label: &str, url: &str) -> String {
        format!("<{}|{}>", escape(url), escape(label))
    }

    /// `<@U…>` where `[[users]]` gives a member id, else the name.
    fn mention(person: &Person) -> String {
        match &person.slack {
            Some(id) => format!("<@{}>", escape(id)),
            None => escape(&person.name),
        }
    }
}

impl super::TextMarkup for Mrkdwn {
    const BREAK: &'static str = "\n";

    const LIST: super::ListStyle = super::ListStyle {
        title: |title| format!("\n*{title}*"),
        bullet: "\n• ",
        more: "\n",
        limit: MAX_TEXT_CHARS,
        measure: super::chars,
    };

    fn rendered(rendered: &Rendered) -> String {
        rendered.slack.clone()
    }
}

/// The line an earlier digest is edited to once a newer one was posted at `posted` (Unix
/// seconds): "Superseded by the digest of 10:00", the time shown in each reader's own zone by
/// Slack's date formatting, `<!date^{unix}^{time}|fallback>`, with the UTC time as the fallback
/// (docs.slack.dev/messaging/formatting-message-text#date-formatting).
pub fn superseded(posted: i64) -> String {
    let fallback = chrono::DateTime::from_timestamp(posted, 0)
        .map(|t| t.format("%H:%M UTC").to_string())
        .unwrap_or_default();
    format!("Superseded by the digest of <!date^{posted}^{{time}}|{fallback}>")
}

/// Slack asks for exactly these three to be escaped in message text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
