//! Slack mrkdwn, for Slack and the Slack-compatible chats (Mattermost, Rocket.Chat): the incoming
//! webhook payload `{text, attachments: [{color, fallback}]}` and the slash command's ephemeral
//! answer. Slack asks for exactly `&`, `<` and `>` to be escaped in message text
//! (api.slack.com/reference/surfaces/formatting#escaping); links are `<url|label>`, mentions
//! `<@U…>`.

use serde_json::{json, Value};

use super::plain;
use crate::notify::doc::{Block, Color, Doc, FailedBuild, Inline, News, Person};

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
    let mut shown = Vec::new();
    let mut out = String::new();
    if let Some(headline) = &doc.headline {
        out.push_str(&format!("*{}*", escape(&headline.text)));
        if let Some(room) = &headline.room {
            out.push_str(&escape(&format!(" ({room})")));
        }
    }
    for (i, block) in doc.blocks.iter().enumerate() {
        let first = i == 0 && doc.headline.is_none();
        match block {
            Block::Paragraph(inlines) => {
                if !first {
                    out.push('\n');
                }
                out.push_str(&line(inlines));
            }
            Block::News(news) => {
                if !first {
                    out.push_str("\n\n");
                }
                out.push_str(&news_text(news));
            }
            Block::List(list) => shown.push(super::push_list(&mut out, list, &LIST, line)),
            Block::Rendered(r) => {
                if !first {
                    out.push('\n');
                }
                out.push_str(&r.slack);
            }
        }
    }
    (out, shown)
}

/// What `block` takes in a message, in characters.
pub fn size(block: &Block) -> usize {
    super::block_size(block, text, super::chars)
}

fn news_text(news: &News) -> String {
    format!(
        "*{}{}*: {}\n{}",
        escape(&news.headline),
        line(&news.who),
        line(&news.line),
        line(&news.details)
    )
}

/// How this chat writes a list (`super::push_list`).
const LIST: super::ListStyle = super::ListStyle {
    title: |title| format!("\n*{title}*"),
    bullet: "\n• ",
    more: "\n",
    limit: MAX_TEXT_CHARS,
    measure: super::chars,
};

fn line(inlines: &[Inline]) -> String {
    let mut out = String::new();
    for inline in inlines {
        match inline {
            Inline::Text(text) => out.push_str(&escape(text)),
            Inline::Fixed(words) => out.push_str(words),
            Inline::Strong(inner) => out.push_str(&format!("*{}*", line(inner))),
            Inline::Link { label, url } => out.push_str(&link(label, Some(url))),
            Inline::Person(person) => out.push_str(&mention(person)),
            Inline::FailedBuilds(builds) => out.push_str(&failed(builds)),
        }
    }
    out
}

fn link(label: &str, url: Option<&str>) -> String {
    match url {
        Some(url) => format!("<{}|{}>", escape(url), escape(label)),
        None => escape(label),
    }
}

/// `<@U…>` where `[[users]]` gives a member id, else the name.
fn mention(person: &Person) -> String {
    match &person.slack {
        Some(id) => format!("<@{}>", escape(id)),
        None => escape(&person.name),
    }
}

fn failed(builds: &[FailedBuild]) -> String {
    if builds.is_empty() {
        return String::new();
    }
    let links: Vec<String> = builds
        .iter()
        .map(|b| link(&b.name, b.url.as_deref()))
        .collect();
    format!(": {}", links.join(", "))
}

/// Slack asks for exactly these three to be escaped in message text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
