//! The chat document: what a message says, once, whatever chat it goes to. Renderers
//! (`message`, `digest`, `/reviews`) build a [`Doc`]; one formatter per kind of chat
//! (`notify::format`) turns it into that chat's bytes, with all escaping and all size limits.
//!
//! User text (titles, names, repositories, build names) enters only as [`Inline::Text`],
//! [`Inline::Link`] labels or a [`Person`]: plain strings that every formatter makes inert in its
//! markup. Markup is never in a string here; it is the shape of the tree ([`Inline::Strong`],
//! [`Block::List`], ...). Stored as JSON in `outbox.payload` for a digest, so the shape is
//! serialised (`serde`) and only ever extended with optional fields.

use std::borrow::Cow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest user-supplied string (title, names) put in a message, in characters.
pub const MAX_FIELD_CHARS: usize = 300;

/// A message's colour, which says how urgent it is: red for a failing build or an escalated
/// digest, purple for changes requested, green for ready or fixed, yellow for needs review, gray
/// for merged or declined and for answers. Serialised in lower case (HipChat's `color` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// Needs review.
    Yellow,
    /// Ready to merge, build fixed, all clear.
    Green,
    /// A failing build, an escalated digest.
    Red,
    /// Changes requested.
    Purple,
    /// Merged, declined, answers: nothing to act on.
    Gray,
}

/// One chat message: a colour, whether to alert people, an optional headline, then blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doc {
    /// How urgent (HipChat's `color`, Slack's attachment colour, Teams' heading colour, Google
    /// Chat's emoji).
    pub color: Color,
    /// Whether the chat should alert people (HipChat's `notify`).
    pub notify: bool,
    /// What the message is about, shown strong at the top (a digest's or a summary's heading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<Headline>,
    /// The body, in order (always serialised: it tells a stored document from what a release
    /// before it stored, `Stored`).
    pub blocks: Vec<Block>,
    /// The people the message asks to act, for a chat that alerts people only in a message of
    /// its own (HipChat pings `@mentions` only in `message_format: text`): each once, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ping: Vec<Person>,
}

/// A heading, and the room it is about (shown after it, not strong: `Heading (room)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headline {
    /// Our words, with counts (`3 pull requests waiting for review`).
    pub text: String,
    /// The room's name, where the message names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// A part of a message, one after another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    /// A line of text.
    Paragraph(Vec<Inline>),
    /// A PR's news: what happened (its headline), the PR, and its details.
    News(News),
    /// A list of PRs, cut to what fits the chat with "and N more" (`List::more`).
    List(List),
    /// A message queued by a release before the chat document, as it stored it: each chat's
    /// rendering made then. Nothing new is built with it; see `Rendered`.
    Rendered(Rendered),
}

/// A PR's news, as one message says it or a backlog summary lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct News {
    /// The most important thing that happened (`Changes requested by Dee`).
    pub headline: String,
    /// Who must act, said right after the headline and as strong (issue 23): ` from Bob, Carol`,
    /// `: Alice's turn`, `: Alice`; people as `Inline::Person`, mentions where mapped. Empty in
    /// documents stored before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub who: Vec<Inline>,
    /// The PR: its title (a link), where it is and who wrote it.
    pub line: Vec<Inline>,
    /// Approvals, changes requested, builds.
    pub details: Vec<Inline>,
    /// Where the PR is (`acme/api #7`): all that is said when the whole would be too long for
    /// the chat.
    pub place: String,
}

/// A list of PRs (one line each), with how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct List {
    /// A strong title line before the items (our words), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Cow<'static, str>>,
    /// The items, in order: each a line of inlines.
    pub items: Vec<Vec<Inline>>,
    /// How many there are in all, including those not in `items`.
    pub total: usize,
}

impl List {
    /// The closing line when only `shown` of `total` are listed: `and N more`.
    pub fn more(&self, shown: usize) -> Option<String> {
        (self.total > shown).then(|| format!("and {} more", self.total - shown))
    }

    /// How many items, taken in order, fit in `budget` when `used` is spent already and each
    /// costs `cost(item)`: a formatter's size limit, applied the same way by every one.
    pub fn fitting(
        &self,
        mut used: usize,
        budget: usize,
        mut cost: impl FnMut(&[Inline]) -> usize,
    ) -> usize {
        let mut shown = 0;
        for item in &self.items {
            let c = cost(item);
            if used.saturating_add(c) > budget {
                break;
            }
            used += c;
            shown += 1;
        }
        shown
    }
}

/// A piece of a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inline {
    /// Text as typed (user text or ours), made inert by the formatter as one piece.
    Text(String),
    /// Our own fixed words and punctuation (`" · "`, `" ("`), written as they are: never user
    /// text. Build with [`Inline::fixed`].
    Fixed(Cow<'static, str>),
    /// Stressed: bold where the chat has it.
    Strong(Vec<Inline>),
    /// No longer current: struck through where the chat has it (a closed PR's title in its
    /// living message), as it is elsewhere.
    Struck(Vec<Inline>),
    /// A link: `label` (text as typed) to `url`.
    Link {
        /// What is shown.
        label: String,
        /// Where it goes.
        url: String,
    },
    /// A Bitbucket user, a chat mention where `[[users]]` maps them.
    Person(Person),
    /// Failing builds, each a link where it has one: listed after `build FAILED` by the chats
    /// that show links; plain text leaves them out (one short line for the console and logs).
    FailedBuilds(Vec<FailedBuild>),
}

impl Inline {
    /// Our own words: a `'static` string, so no user text can be one.
    pub fn fixed(words: &'static str) -> Inline {
        Inline::Fixed(Cow::Borrowed(words))
    }

    /// Text as typed.
    pub fn text(text: impl Into<String>) -> Inline {
        Inline::Text(text.into())
    }

    /// A link to `url` when there is one, else the label as text.
    pub fn link(label: impl Into<String>, url: Option<&str>) -> Inline {
        match url {
            Some(url) => Inline::Link {
                label: label.into(),
                url: url.to_owned(),
            },
            None => Inline::Text(label.into()),
        }
    }
}

/// A failing build: its name and its page, if known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedBuild {
    /// The build's name (clipped).
    pub name: String,
    /// Its page.
    pub url: Option<String>,
}

/// A person: the name people recognise, and their chat identities where `[[users]]` maps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Display name (clipped).
    pub name: String,
    /// HipChat mention name (with or without `@`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hipchat: Option<String>,
    /// Slack member id (`U…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<String>,
    /// Google Chat user id (the number of `users/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_chat: Option<String>,
    /// Microsoft Teams user principal name or object id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<String>,
}

impl Person {
    /// `who` as a message names them (their name clipped by the caller), with every chat id
    /// `[[users]]` gives.
    pub fn of(who: &crate::domain::Reviewer, name: String) -> Person {
        Person {
            name,
            hipchat: who.hipchat.clone(),
            slack: who.slack.clone(),
            google_chat: who.google_chat.clone(),
            teams: who.teams.clone(),
        }
    }
}

/// A message as releases before the chat document stored it (`outbox.payload` of a digest): one
/// rendering per chat, made when it was queued. Rows from before Teams or Google Chat existed
/// lack theirs (empty); their formatters then show the plain text, made inert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// HipChat HTML.
    pub html: String,
    /// Slack mrkdwn.
    pub slack: String,
    /// Plain text.
    pub text: String,
    /// Teams markdown, paragraphs separated by `\n\n`; may be empty.
    #[serde(default)]
    pub teams: String,
    /// Google Chat text; may be empty.
    #[serde(default)]
    pub google_chat: String,
}

impl Doc {
    /// The same document with `change` applied to every person it names (in its blocks and its
    /// `ping`): e.g. a chat's ids taken away where another chat's formatter is borrowed.
    pub fn with_people(mut self, change: impl Fn(&mut Person) + Copy) -> Doc {
        fn walk(inlines: &mut [Inline], change: impl Fn(&mut Person) + Copy) {
            for inline in inlines {
                match inline {
                    Inline::Person(p) => change(p),
                    Inline::Strong(inner) | Inline::Struck(inner) => walk(inner, change),
                    _ => {}
                }
            }
        }
        for block in &mut self.blocks {
            match block {
                Block::Paragraph(inlines) => walk(inlines, change),
                Block::News(news) => {
                    walk(&mut news.who, change);
                    walk(&mut news.line, change);
                    walk(&mut news.details, change);
                }
                Block::List(list) => {
                    for item in &mut list.items {
                        walk(item, change);
                    }
                }
                Block::Rendered(_) => {}
            }
        }
        self.ping.iter_mut().for_each(change);
        self
    }

    /// Every person the document names, in order (repeats included).
    pub fn people(&self) -> Vec<Person> {
        let seen = std::cell::RefCell::new(Vec::new());
        let _ = self
            .clone()
            .with_people(|p| seen.borrow_mut().push(p.clone()));
        seen.into_inner()
    }

    /// A message of plain lines (our words, no markup), not alerting anyone.
    pub fn lines<'a>(color: Color, lines: impl IntoIterator<Item = &'a str>) -> Doc {
        Doc {
            color,
            notify: false,
            headline: None,
            blocks: lines
                .into_iter()
                .map(|l| Block::Paragraph(vec![Inline::text(l)]))
                .collect(),
            ping: Vec::new(),
        }
    }

    /// The document as a chat showed it: each list's items after the first `shown[k]` (of the
    /// `k`-th list) left out, its total kept (so it says the same "and N more"). What a
    /// formatter fitted to its limit, for the text that goes with it (Slack's fallback, the
    /// outbox's record).
    pub fn cut(&self, shown: &[usize]) -> Doc {
        let mut doc = self.clone();
        let lists = doc.blocks.iter_mut().filter_map(|b| match b {
            Block::List(list) => Some(list),
            _ => None,
        });
        for (list, shown) in lists.zip(shown) {
            list.items.truncate(*shown);
        }
        doc
    }

    /// Whether the document has a list (that a formatter may cut).
    pub fn has_list(&self) -> bool {
        self.blocks.iter().any(|b| matches!(b, Block::List(_)))
    }

    /// Adds a plain line at the end.
    pub fn push_line(&mut self, line: &str) {
        self.blocks.push(Block::Paragraph(vec![Inline::text(line)]));
    }
}

/// A message as the outbox stores it for a digest (`outbox.payload`): a chat document, or what a
/// release before it stored (each chat's rendering, `Rendered`, with its colour, `notify` and
/// HipChat mention names).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Stored {
    /// Written by a release before the chat document (it has `html`, `slack` and `text`).
    Rendered {
        /// Its colour.
        color: Color,
        /// Whether it alerts.
        notify: bool,
        /// The renderings.
        #[serde(flatten)]
        rendered: Rendered,
        /// HipChat mention names (without `@`) to ping after it.
        #[serde(default)]
        mentions: Vec<String>,
    },
    /// Written by this release.
    Doc(Doc),
}

impl From<Stored> for Doc {
    fn from(stored: Stored) -> Doc {
        match stored {
            Stored::Doc(doc) => doc,
            Stored::Rendered {
                color,
                notify,
                rendered,
                mentions,
            } => Doc {
                color,
                notify,
                headline: None,
                blocks: vec![Block::Rendered(rendered)],
                ping: mentions
                    .into_iter()
                    .map(|m| Person {
                        name: m.clone(),
                        hipchat: Some(m),
                        slack: None,
                        google_chat: None,
                        teams: None,
                    })
                    .collect(),
            },
        }
    }
}

/// A backlog summary: `heading` (our words; ` (k/n)` added when it takes several messages), then
/// each of `items` (a PR's news, `Block::News`) whole, in order, as few messages as fit:
/// `size(item)` is what an item takes in the chat's own measure, `limit` the most one message
/// may hold in it (the formatter's). Returns each message with how many items it lists. No item is
/// dropped: one too long to share a message goes alone. Yellow and alerting, like a PR's news.
pub fn summary(
    heading: &str,
    items: Vec<Block>,
    size: impl Fn(&Block) -> usize,
    limit: usize,
) -> Vec<(Doc, usize)> {
    // Room for the heading and its part number.
    let budget = limit.saturating_sub(heading.chars().count() * 2 + 64);
    let mut parts: Vec<Vec<Block>> = Vec::new();
    let mut used = usize::MAX;
    for item in items {
        let n = size(&item) + 8;
        if used.saturating_add(n) > budget {
            parts.push(Vec::new());
            used = 0;
        }
        used += n;
        if let Some(part) = parts.last_mut() {
            part.push(item);
        }
    }
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, blocks)| {
            let text = if count > 1 {
                format!("{heading} ({}/{count})", i + 1)
            } else {
                heading.to_owned()
            };
            let listed = blocks.len();
            let doc = Doc {
                color: Color::Yellow,
                notify: true,
                headline: Some(Headline { text, room: None }),
                blocks,
                ping: Vec::new(),
            };
            (doc, listed)
        })
        .collect()
}

/// Cuts a user-supplied string to `MAX_FIELD_CHARS` characters, ending a shortened one with `…`.
pub fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_FIELD_CHARS {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX_FIELD_CHARS - 1).collect();
        out.push('…');
        out
    }
}

/// `5h`, `2d 3h`.
pub fn format_age(age: Duration) -> String {
    let hours = age.as_secs() / 3600;
    match (hours / 24, hours % 24) {
        (0, h) => format!("{h}h"),
        (d, 0) => format!("{d}d"),
        (d, h) => format!("{d}d {h}h"),
    }
}

/// A span of `seconds` as the figures show it: `12m`, `4h 10m`, `2d 3h` (rounded down to the
/// minute; never negative: a negative span reads `0m`).
pub fn format_span(seconds: i64) -> String {
    let minutes = seconds.max(0) / 60;
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes}m"),
        (0, h) => format!("{h}h {minutes}m"),
        (d, h) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod span_tests {
    use super::format_span;

    #[test]
    fn spans_read_in_minutes_hours_and_days() {
        assert_eq!(format_span(-5), "0m");
        assert_eq!(format_span(59), "0m");
        assert_eq!(format_span(12 * 60 + 30), "12m");
        assert_eq!(format_span(4 * 3600 + 10 * 60), "4h 10m");
        assert_eq!(format_span(6 * 3600), "6h 0m");
        assert_eq!(format_span(2 * 86_400 + 3 * 3600 + 59 * 60), "2d 3h");
    }
}
