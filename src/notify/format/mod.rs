//! One formatter per kind of chat: each turns a chat document (`notify::doc`) into the bytes
//! that chat's API takes, with all of its escaping and its size limits. Imports only
//! `notify::doc` (and each other's plain text where a chat wants a fallback).
//!
//! - `hipchat`: HipChat v2 HTML (10,000 characters) and its text-format mention ping;
//! - `slack`: Slack mrkdwn, also for Mattermost and Rocket.Chat;
//! - `teams`: a Microsoft Teams Workflows Adaptive Card (about 28 KB);
//! - `google_chat`: Google Chat text (32,000 bytes);
//! - `plain`: plain text, for the console, logs and the outbox's record.

pub mod google_chat;
pub mod hipchat;
pub mod plain;
pub mod slack;
pub mod teams;

use super::doc::{Block, Color, Doc, FailedBuild, Inline, List, News, Person, Rendered};

/// A kind of chat, as far as what it is sent looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// HipChat v2 room notifications (`hipchat`).
    HipChat,
    /// Slack-compatible incoming webhooks (`slack`).
    Slack,
    /// Microsoft Teams Workflows (`teams`).
    Teams,
    /// Google Chat incoming webhooks (`google_chat`).
    GoogleChat,
    /// Plain text (`plain`).
    Plain,
}

impl Format {
    /// The most one message may hold, in `size`'s measure (characters or bytes, per chat).
    pub fn limit(self) -> usize {
        match self {
            Format::HipChat => hipchat::MAX_MESSAGE_CHARS,
            Format::Slack => slack::MAX_TEXT_CHARS,
            Format::Teams => teams::MAX_CARD_BYTES,
            Format::GoogleChat => google_chat::MAX_TEXT_BYTES,
            Format::Plain => plain::MAX_TEXT_CHARS,
        }
    }

    /// How many items of each list of `doc` this chat's message shows (`Doc::cut`).
    pub fn shown(self, doc: &super::doc::Doc) -> Vec<usize> {
        if !doc.has_list() {
            return Vec::new();
        }
        match self {
            Format::HipChat => hipchat::shown(doc),
            Format::Slack => slack::shown(doc),
            Format::Teams => teams::shown(doc),
            Format::GoogleChat => google_chat::shown(doc),
            Format::Plain => plain::shown(doc),
        }
    }

    /// The plain text of `doc` as this chat shows it (its lists cut where this chat cuts them):
    /// the record of what was said, and a fallback.
    pub fn plain(self, doc: &super::doc::Doc) -> String {
        let shown = self.shown(doc);
        if shown.is_empty() {
            plain::text(doc)
        } else {
            plain::text(&doc.cut(&shown))
        }
    }

    /// What `block` takes in this chat, in the measure of `limit`: how a backlog summary is
    /// split.
    pub fn size(self, block: &Block) -> usize {
        match self {
            Format::HipChat => hipchat::size(block),
            Format::Slack => slack::size(block),
            Format::Teams => teams::size(block),
            Format::GoogleChat => google_chat::size(block),
            Format::Plain => plain::size(block),
        }
    }
}

/// `url` with each of `chars` (and any control character) percent-encoded as UTF-8: a URL made
/// safe to stand inside a chat's link syntax.
pub(crate) fn encode_chars(url: &str, chars: &[char]) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        if chars.contains(&c) || c.is_control() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Room kept after a list's items for its "and N more" line and what follows, in the chat's
/// measure.
const LIST_RESERVE: usize = 400;

/// How one chat writes a list (`push_list`): what stands before the items, before each item and
/// before "and N more", the chat's limit, and its measure (characters or bytes).
pub(crate) struct ListStyle {
    /// The list's title as it opens the list (on its own line).
    pub title: fn(&str) -> String,
    /// Before each item: a line break and a bullet.
    pub bullet: &'static str,
    /// Before "and N more": a line break (and an indent).
    pub more: &'static str,
    /// The most one message may hold, in `measure`.
    pub limit: usize,
    /// A text's size in the chat's measure.
    pub measure: fn(&str) -> usize,
}

/// Characters, the measure of chats whose limit counts characters.
pub(crate) fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Bytes, the measure of chats whose limit counts bytes.
pub(crate) fn bytes(text: &str) -> usize {
    text.len()
}

/// Appends `list` to `out` in `style`: its title, then as many items (each written by `line`) as
/// fit in the message with room to spare (`LIST_RESERVE`), then "and N more". Returns how many
/// items it shows.
pub(crate) fn push_list(
    out: &mut String,
    list: &List,
    style: &ListStyle,
    line: fn(&[Inline]) -> String,
) -> usize {
    if let Some(title) = &list.title {
        out.push_str(&(style.title)(title));
    }
    let budget = style.limit - LIST_RESERVE;
    let mut used = (style.measure)(out);
    let mut shown = 0;
    for item in &list.items {
        let item = line(item);
        let n = (style.measure)(&item);
        if used + n + 8 > budget {
            break;
        }
        out.push_str(style.bullet);
        out.push_str(&item);
        used += n + (style.measure)(style.bullet);
        shown += 1;
    }
    if let Some(more) = list.more(shown) {
        out.push_str(style.more);
        out.push_str(&more);
    }
    shown
}

/// What `block` alone takes in a message that `render` writes, in `measure`.
pub(crate) fn block_size(
    block: &Block,
    render: fn(&Doc) -> String,
    measure: fn(&str) -> usize,
) -> usize {
    let doc = Doc {
        color: Color::Gray,
        notify: false,
        headline: None,
        blocks: vec![block.clone()],
        ping: Vec::new(),
    };
    measure(&render(&doc))
}

/// How one chat writes inline markup: the pieces `line` puts together. User text reaches a
/// message only through `escape` (directly, or inside `link` and `mention`), so each formatter
/// escapes each user string exactly once.
pub(crate) trait Markup {
    /// User text made inert in this chat's markup.
    fn escape(text: &str) -> String;

    /// Markup already written (escaped), shown strong.
    fn strong(inner: &str) -> String;

    /// A link labelled `label` to `url` (both user text: escaped here).
    fn link(label: &str, url: &str) -> String;

    /// Markup already written (escaped), struck through; chats without it show it as it is.
    fn struck(inner: &str) -> String {
        inner.to_owned()
    }

    /// A person: the chat's mention where `[[users]]` gives one, else the name. Chats without
    /// mention ids keep this default, the escaped name.
    fn mention(person: &Person) -> String {
        Self::escape(&person.name)
    }
}

/// Inlines in `M`'s markup.
pub(crate) fn line<M: Markup>(inlines: &[Inline]) -> String {
    let mut out = String::new();
    for inline in inlines {
        match inline {
            Inline::Text(text) => out.push_str(&M::escape(text)),
            Inline::Fixed(words) => out.push_str(words),
            Inline::Strong(inner) => out.push_str(&M::strong(&line::<M>(inner))),
            Inline::Struck(inner) => out.push_str(&M::struck(&line::<M>(inner))),
            Inline::Link { label, url } => out.push_str(&M::link(label, url)),
            Inline::Person(person) => out.push_str(&M::mention(person)),
            Inline::FailedBuilds(builds) => out.push_str(&failed::<M>(builds)),
        }
    }
    out
}

/// `: name, name` for failed builds, each a link where the build has one; empty for none.
fn failed<M: Markup>(builds: &[FailedBuild]) -> String {
    if builds.is_empty() {
        return String::new();
    }
    let links: Vec<String> = builds
        .iter()
        .map(|b| match &b.url {
            Some(url) => M::link(&b.name, url),
            None => M::escape(&b.name),
        })
        .collect();
    format!(": {}", links.join(", "))
}

/// A chat whose message is one text with blocks on lines of their own (HipChat HTML, Slack
/// mrkdwn, Google Chat text): `render` writes all of them alike.
pub(crate) trait TextMarkup: Markup + Sized {
    /// A line break.
    const BREAK: &'static str;

    /// How this chat writes a list.
    const LIST: ListStyle;

    /// A PR's news: strong headline, its line, its details on the next line.
    fn news(news: &News) -> String {
        news_text::<Self>(news)
    }

    /// What a release before the chat document stored for this chat (`Block::Rendered`).
    fn rendered(rendered: &Rendered) -> String;
}

/// A PR's news headline and who must act (`Needs review from Bob`), in `M`'s markup, not yet
/// strong.
pub(crate) fn headline<M: Markup>(news: &News) -> String {
    format!("{}{}", M::escape(&news.headline), line::<M>(&news.who))
}

/// `headline: line` and `details` below it, in `M`'s markup.
pub(crate) fn news_text<M: TextMarkup>(news: &News) -> String {
    format!(
        "{}: {}{}{}",
        M::strong(&headline::<M>(news)),
        line::<M>(&news.line),
        M::BREAK,
        line::<M>(&news.details)
    )
}

/// `doc` in `M`'s markup, and how many items of each list it shows: the headline (strong, the
/// room after it), then each block on a line of its own (a PR's news after an empty line), lists
/// cut to the chat's limit by `push_list`.
pub(crate) fn render<M: TextMarkup>(doc: &Doc) -> (String, Vec<usize>) {
    let mut shown = Vec::new();
    let mut out = String::new();
    if let Some(headline) = &doc.headline {
        out.push_str(&M::strong(&M::escape(&headline.text)));
        if let Some(room) = &headline.room {
            out.push_str(&M::escape(&format!(" ({room})")));
        }
    }
    for (i, block) in doc.blocks.iter().enumerate() {
        let first = i == 0 && doc.headline.is_none();
        match block {
            Block::Paragraph(inlines) => {
                if !first {
                    out.push_str(M::BREAK);
                }
                out.push_str(&line::<M>(inlines));
            }
            Block::News(news) => {
                if !first {
                    out.push_str(M::BREAK);
                    out.push_str(M::BREAK);
                }
                out.push_str(&M::news(news));
            }
            Block::List(list) => shown.push(push_list(&mut out, list, &M::LIST, line::<M>)),
            Block::Rendered(r) => {
                if !first {
                    out.push_str(M::BREAK);
                }
                out.push_str(&M::rendered(r));
            }
        }
    }
    (out, shown)
}
