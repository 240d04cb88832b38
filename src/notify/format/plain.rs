//! Plain text, for the console room, logs and the outbox's record of what was said
//! (`outbox.message`): user text as typed (nothing here is markup), a link as its label with its
//! URL in angle brackets at the end of its line.

use crate::notify::doc::{Block, Doc, Inline, News};

/// The most text one message carries, in characters (lists are cut to it with "and N more").
pub const MAX_TEXT_CHARS: usize = 10_000;

/// The document as plain text.
pub fn text(doc: &Doc) -> String {
    render(doc).0
}

/// How many items of each list the text shows.
pub fn shown(doc: &Doc) -> Vec<usize> {
    render(doc).1
}

/// The text, and how many items of each list it shows.
fn render(doc: &Doc) -> (String, Vec<usize>) {
    let mut shown = Vec::new();
    let mut out = String::new();
    if let Some(headline) = &doc.headline {
        out.push_str(&headline.text);
        if let Some(room) = &headline.room {
            out.push_str(&format!(" ({room})"));
        }
    }
    for (i, block) in doc.blocks.iter().enumerate() {
        let first = i == 0 && doc.headline.is_none();
        match block {
            Block::List(list) => shown.push(super::push_list(&mut out, list, &LIST, line)),
            block => {
                if !first {
                    out.push('\n');
                }
                match block {
                    Block::Paragraph(inlines) => out.push_str(&line(inlines)),
                    Block::News(news) => out.push_str(&news_text(news)),
                    Block::Rendered(r) => out.push_str(&r.text),
                    Block::List(_) => {}
                }
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
        "{}{}: {} — {}",
        news.headline,
        line(&news.who),
        line(&news.line),
        line(&news.details)
    )
}

/// How this chat writes a list (`super::push_list`).
const LIST: super::ListStyle = super::ListStyle {
    title: |title| format!("\n{title}:"),
    bullet: "\n  - ",
    more: "\n  ",
    limit: MAX_TEXT_CHARS,
    measure: super::chars,
};

/// Inlines as text, then the URL of each link in it as ` <url>`.
fn line(inlines: &[Inline]) -> String {
    let mut out = String::new();
    let mut urls = Vec::new();
    words(inlines, &mut out, &mut urls);
    for url in urls {
        out.push_str(&format!(" <{url}>"));
    }
    out
}

fn words<'a>(inlines: &'a [Inline], out: &mut String, urls: &mut Vec<&'a str>) {
    for inline in inlines {
        match inline {
            Inline::Text(text) => out.push_str(text),
            Inline::Fixed(words) => out.push_str(words),
            Inline::Strong(inner) | Inline::Struck(inner) => words(inner, out, urls),
            Inline::Link { label, url } => {
                out.push_str(label);
                urls.push(url);
            }
            Inline::Person(person) => out.push_str(&person.name),
            // One short line: the failing builds' names are for the chats that link them.
            Inline::FailedBuilds(_) => {}
        }
    }
}
