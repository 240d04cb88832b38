//! HipChat v2: a chat document as a room notification in `message_format: html` (every user
//! string escaped, at most 10,000 characters), and the `message_format: text` mention ping.
//! Source: developer.atlassian.com/server/hipchat/send-room-notification (`message` 1..10000
//! characters; HTML allows `a b i strong em br ...`; `@mentions` ping only in text messages).

use serde_json::{json, Value};

use crate::notify::doc::{Block, Color, Doc, Inline, News, Person, Rendered};

/// HipChat's room notification limit, in characters.
pub const MAX_MESSAGE_CHARS: usize = 10_000;

/// The name HipChat v2's room notification `color` field takes.
pub fn color(color: Color) -> &'static str {
    match color {
        Color::Yellow => "yellow",
        Color::Green => "green",
        Color::Red => "red",
        Color::Purple => "purple",
        Color::Gray => "gray",
    }
}

/// The room notification (and `/reviews` answer) body: `message` (HTML), `message_format`,
/// `color`, `notify`, `from`.
pub fn notification(doc: &Doc) -> Value {
    json!({
        "message": html(doc),
        "message_format": "html",
        "color": color(doc.color),
        "notify": doc.notify,
        "from": "pr-reminder",
    })
}

/// Most people one mention ping names (those of the first list items shown, in order).
pub const MAX_MENTIONS: usize = 30;

/// The mention ping after a message that asks people to act (`doc.ping`): a yellow, notifying
/// `message_format: text` message naming those with a HipChat mention name, `@name`, each once,
/// leaving out anyone mentioned only in list items the message had no room for ("see above"
/// must be true). `None` when nobody is left. Mention names come from `[[users]]`, not from
/// Bitbucket.
pub fn ping(doc: &Doc) -> Option<Value> {
    let (_, shown) = render(doc);
    let lists = doc.blocks.iter().filter_map(|b| match b {
        Block::List(list) => Some(list),
        _ => None,
    });
    let mut in_sight: Vec<&str> = Vec::new();
    for (list, shown) in lists.zip(&shown) {
        for item in list.items.iter().take(*shown) {
            for inline in item {
                if let Inline::Person(Person {
                    hipchat: Some(m), ..
                }) = inline
                {
                    in_sight.push(m.trim_start_matches('@'));
                }
            }
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for name in doc.ping.iter().filter_map(|p| p.hipchat.as_deref()) {
        let name = name.trim_start_matches('@');
        let seen = shown.is_empty() || in_sight.contains(&name);
        if seen && !names.contains(&name) && names.len() < MAX_MENTIONS {
            names.push(name);
        }
    }
    if names.is_empty() {
        return None;
    }
    let names: Vec<String> = names.iter().map(|m| format!("@{m}")).collect();
    Some(json!({
        "message": format!("{}: pull requests are waiting for your review (see above)", names.join(" ")),
        "message_format": "text",
        "color": color(Color::Yellow),
        "notify": true,
        "from": "pr-reminder",
    }))
}

/// The document as HipChat HTML, within `MAX_MESSAGE_CHARS` (lists cut with "and N more"; a
/// PR's news that would not fit says only where the PR is).
pub fn html(doc: &Doc) -> String {
    render(doc).0
}

/// How many items of each list the HTML shows.
pub fn shown(doc: &Doc) -> Vec<usize> {
    render(doc).1
}

/// The HTML, and how many items of each list it shows.
fn render(doc: &Doc) -> (String, Vec<usize>) {
    super::render::<Html>(doc)
}

/// What `block` takes in a message, in characters.
pub fn size(block: &Block) -> usize {
    super::block_size(block, html, super::chars)
}

/// HipChat's HTML (`super::Markup`).
struct Html;

impl super::Markup for Html {
    fn escape(text: &str) -> String {
        escape(text)
    }

    fn strong(inner: &str) -> String {
        format!("<b>{inner}</b>")
    }

    fn link(label: &str, url: &str) -> String {
        format!("<a href=\"{}\">{}</a>", escape(url), escape(label))
    }

    /// `@mention` where `[[users]]` gives one (a ping only in text messages), else the name.
    fn mention(person: &Person) -> String {
        match &person.hipchat {
            Some(m) => format!("@{}", escape(m.trim_start_matches('@'))),
            None => escape(&person.name),
        }
    }
}

impl super::TextMarkup for Html {
    const BREAK: &'static str = "<br>";

    const LIST: super::ListStyle = super::ListStyle {
        title: |title| format!("<br><b>{title}</b>"),
        bullet: "<br>• ",
        more: "<br>",
        limit: MAX_MESSAGE_CHARS,
        measure: super::chars,
    };

    fn news(news: &News) -> String {
        let full = super::news_text::<Self>(news);
        if full.chars().count() > MAX_MESSAGE_CHARS {
            // Only reachable with pathological data; a short message beats a refused one.
            return format!(
                "<b>{}</b>: {}",
                super::headline::<Self>(news),
                escape(&news.place)
            );
        }
        full
    }

    fn rendered(rendered: &Rendered) -> String {
        rendered.html.clone()
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HipChat's HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
