//! Plain text, for the console room, logs and the outbox's record of what was said
//! (`outbox.message`): user text as typed (nothing here is markup), a link as its label with its
//! URL in angle brackets at the end of its line.

use crate::notify::doc::{Block, Color, Doc, Inline, List, News};

/// The most text one message carries, in characters (lists are cut to it with "and N more").
pub const MAX_TEXT_CHARS: usize = 10_000;

/// Room a digest leaves for its "and N more" lines and its second heading.
const LIST_RESERVE: usize = 400;

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
            Block::List(list) => shown.push(push_list(&mut out, list)),
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
    let doc = Doc {
        color: Color::Gray,
        notify: false,
        headline: None,
        blocks: vec![block.clone()],
        ping: Vec::new(),
    };
    text(&doc).chars().count()
}

fn news_text(news: &News) -> String {
    format!(
        "{}: {} — {}",
        news.headline,
        line(&news.line),
        line(&news.details)
    )
}

fn push_list(out: &mut String, list: &List) -> usize {
    if let Some(title) = &list.title {
        out.push_str(&format!("\n{title}:"));
    }
    let budget = MAX_TEXT_CHARS - LIST_RESERVE;
    let mut used = out.chars().count();
    let mut shown = 0;
    for item in &list.items {
        let item = line(item);
        let n = item.chars().count();
        if used + n + 8 > budget {
            break;
        }
        out.push_str("\n  - ");
        out.push_str(&item);
        used += n + 5;
        shown += 1;
    }
    if let Some(more) = list.more(shown) {
        out.push_str(&format!("\n  {more}"));
    }
    shown
}

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
            Inline::Strong(inner) => words(inner, out, urls),
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
