//! Microsoft Teams: a chat document as the body a Workflows webhook ("when a Teams webhook
//! request is received") takes: a `message` carrying one Adaptive Card whose TextBlocks hold
//! markdown. The flow fails a body without `attachments`, and Office 365 connector MessageCards
//! are retired, so this is the only shape (learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using).
//! Teams takes cards up to about 28 KB.

use serde_json::{json, Value};

use super::encode_chars;
use crate::notify::doc::{Block, Color, Doc, Inline, List, News, Person};

/// Adaptive Card version: 1.4 is what Teams renders everywhere (desktop, web, mobile).
const CARD_VERSION: &str = "1.4";

/// The most one card's text may take, in bytes as sent (JSON-escaped).
pub const MAX_CARD_BYTES: usize = 28_000;

/// Room a digest leaves for its "and N more" lines, its second heading and the card around it.
const LIST_RESERVE: usize = 400;

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

/// The POST body: the first paragraph as a bold heading coloured by `doc.color`, each further
/// paragraph as a wrapped TextBlock.
pub fn body(doc: &Doc) -> Value {
    let markdown = markdown(doc);
    let mut paragraphs = markdown.split("\n\n").filter(|p| !p.trim().is_empty());
    let mut blocks = vec![json!({
        "type": "TextBlock",
        "text": paragraphs.next().unwrap_or_default(),
        "wrap": true,
        "weight": "bolder",
        "color": text_color(doc.color),
    })];
    blocks.extend(paragraphs.map(|p| {
        json!({
            "type": "TextBlock",
            "text": p,
            "wrap": true,
        })
    }));
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": blocks,
    });
    let entities = mention_entities(doc, &markdown);
    if !entities.is_empty() {
        content["msteams"] = json!({ "entities": entities });
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": content,
        }],
    })
}

/// The document as Adaptive Card TextBlock markdown: paragraphs separated by `\n\n` (the first
/// is the heading), a list's items within one paragraph by `\n`.
pub fn markdown(doc: &Doc) -> String {
    render(doc).0
}

/// How many items of each list the card shows.
pub fn shown(doc: &Doc) -> Vec<usize> {
    render(doc).1
}

/// The markdown, and how many items of each list it shows.
fn render(doc: &Doc) -> (String, Vec<usize>) {
    let mut shown = Vec::new();
    let mut paragraphs: Vec<String> = Vec::new();
    if let Some(headline) = &doc.headline {
        let mut p = escape(&headline.text);
        if let Some(room) = &headline.room {
            p.push_str(&escape(&format!(" ({room})")));
        }
        paragraphs.push(p);
    }
    for block in &doc.blocks {
        match block {
            Block::Paragraph(inlines) => paragraphs.push(line(inlines)),
            Block::News(news) => paragraphs.extend(news_paragraphs(news)),
            Block::List(list) => shown.push(push_list(&mut paragraphs, list)),
            Block::Rendered(r) if r.teams.is_empty() => {
                // Stored before Teams existed: its plain text, escaped.
                let lines: Vec<String> = r.text.lines().map(escape).collect();
                paragraphs.push(lines.join("\n\n"));
            }
            Block::Rendered(r) => paragraphs.push(r.teams.clone()),
        }
    }
    (paragraphs.join("\n\n"), shown)
}

/// What `block` takes in a card, in bytes as sent.
pub fn size(block: &Block) -> usize {
    let doc = Doc {
        color: Color::Gray,
        notify: false,
        headline: None,
        blocks: vec![block.clone()],
        ping: Vec::new(),
    };
    sent_bytes(&markdown(&doc))
}

/// Bytes of `text` inside a JSON string: backslashes and quotes take two.
fn sent_bytes(text: &str) -> usize {
    text.len() + text.chars().filter(|c| matches!(c, '\\' | '"')).count()
}

fn news_paragraphs(news: &News) -> [String; 3] {
    [
        super::headline::<Markdown>(news),
        line(&news.line),
        line(&news.details),
    ]
}

fn push_list(paragraphs: &mut Vec<String>, list: &List) -> usize {
    if let Some(title) = &list.title {
        paragraphs.push(format!("**{title}**"));
    }
    let budget = MAX_CARD_BYTES - LIST_RESERVE;
    let mut used: usize = paragraphs.iter().map(|p| sent_bytes(p) + 2).sum();
    let mut items = Vec::new();
    for item in &list.items {
        let item = line(item);
        let n = sent_bytes(&item);
        if used + n + 8 > budget {
            break;
        }
        used += n + 3;
        items.push(format!("- {item}"));
    }
    let shown = items.len();
    if !items.is_empty() {
        paragraphs.push(items.join("\n"));
    }
    if let Some(more) = list.more(shown) {
        paragraphs.push(more);
    }
    shown
}

/// Inlines as Adaptive Card markdown.
fn line(inlines: &[Inline]) -> String {
    super::line::<Markdown>(inlines)
}

/// Adaptive Card TextBlock markdown (`super::Markup`). A person `[[users]]` gives a Teams id
/// (their user principal name or object id, else their e-mail) is a mention, `<at>Name</at>`,
/// which `body` declares in the card's `msteams.entities`; anyone else is their name.
struct Markdown;

impl super::Markup for Markdown {
    fn escape(text: &str) -> String {
        escape(text)
    }

    fn strong(inner: &str) -> String {
        format!("**{inner}**")
    }

    fn link(label: &str, url: &str) -> String {
        format!("[{}]({})", escape(label), url_escape(url))
    }

    fn mention(person: &Person) -> String {
        match person.teams.as_deref() {
            Some(id) if !id.is_empty() => mention_text(person),
            _ => escape(&person.name),
        }
    }
}

/// The text of a mention of `person` in the card: `<at>Name</at>`, the name made inert.
fn mention_text(person: &Person) -> String {
    format!("<at>{}</at>", escape(&person.name))
}

/// The card's `msteams.entities`: one mention per person with a Teams id whose `<at>` text the
/// card shows (a list cut to fit may leave some out; Teams refuses an entity whose text is not
/// in the card). Source: learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/
/// cards/cards-format ("Mention support within Adaptive Cards": `type: "mention"`, `text`
/// equal to the `<at>` tag, `mentioned.id` the user principal name or Microsoft Entra object id,
/// `mentioned.name`).
fn mention_entities(doc: &Doc, markdown: &str) -> Vec<Value> {
    let mut people: Vec<Person> = Vec::new();
    for p in doc.people() {
        if p.teams.as_deref().is_some_and(|id| !id.is_empty())
            && !people.iter().any(|q| q.teams == p.teams)
        {
            people.push(p);
        }
    }
    people
        .into_iter()
        .filter(|p| markdown.contains(&mention_text(p)))
        .map(|p| {
            json!({
                "type": "mention",
                "text": mention_text(&p),
                "mentioned": {"id": p.teams, "name": p.name},
            })
        })
        .collect()
}

/// Makes a user-supplied string inert in Adaptive Card TextBlock markdown.
///
/// Adaptive Cards take a CommonMark subset (bold, italic, lists, `[text](url)`), and CommonMark
/// lets any ASCII punctuation be backslash-escaped, so every character that can open markup is:
/// `\ * _ [ ] ( ) # > ` ~ |`, plus `<` (autolinks, `<at>` tags), `&` (so `&amp;` stays literal
/// instead of becoming an entity), `!` (images) and `{ }` (the `{{DATE(…)}}` and `{{TIME(…)}}`
/// functions). A list marker (`-`, `+`, `1.`) only counts at the start of a line, so it is escaped
/// only there. Even a host that ignored the backslashes could not form a link: `](` never stands
/// side by side. Line breaks become spaces so a title cannot start a list or a paragraph.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    // Where a list marker would be: after up to a few spaces, then digits for `1.`.
    let lead = s.chars().take_while(|c| *c == ' ').count();
    let digits = lead
        + s.chars()
            .skip(lead)
            .take_while(char::is_ascii_digit)
            .count();
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '>' | '<' | '`' | '~' | '|' | '&'
            | '!' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '-' | '+' if i == lead => out.push_str(&format!("\\{c}")),
            '.' if i == digits && i > lead => out.push_str("\\."),
            '\r' | '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// A URL as the destination of a markdown link `[text](url)`: the characters that would end or
/// break the destination are percent-encoded.
pub fn url_escape(url: &str) -> String {
    encode_chars(url, &[' ', '(', ')', '<', '>', '\\', '[', ']'])
}
