//! Google Chat: a chat document as an incoming webhook's text message (`{"text": …}`), cut to
//! Google's 32,000-byte limit (developers.google.com/workspace/chat/format-messages,
//! .../chat/api/guides/limits), and the URL that threads one PR's messages.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::encode_chars;
use crate::notify::doc::{Block, Color, Doc, Rendered};

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

/// The POST body.
pub fn body(doc: &Doc) -> Value {
    json!({ "text": text(doc) })
}

/// The message's text with its colour emoji in front, cut to `MAX_TEXT_BYTES`.
pub fn text(doc: &Doc) -> String {
    let rendered = markup(doc);
    let full = match color_emoji(doc.color) {
        Some(emoji) => format!("{emoji} {rendered}"),
        None => rendered,
    };
    cut(full, MAX_TEXT_BYTES)
}

/// The document in Google Chat's text markup (`*bold*`, `<url|text>`), without the emoji.
pub fn markup(doc: &Doc) -> String {
    render(doc).0
}

/// How many items of each list the text shows.
pub fn shown(doc: &Doc) -> Vec<usize> {
    render(doc).1
}

/// The markup, and how many items of each list it shows.
fn render(doc: &Doc) -> (String, Vec<usize>) {
    super::render::<Text>(doc)
}

/// What `block` takes in a message, in bytes.
pub fn size(block: &Block) -> usize {
    super::block_size(block, markup, super::bytes)
}

/// Google Chat's text markup (`super::Markup`). A person `[[users]]` gives a Google Chat id is
/// a mention, `<users/{id}>` ("Mention users", developers.google.com/workspace/chat/
/// format-messages; incoming webhooks read the same text syntax); anyone else is their name.
struct Text;

impl super::Markup for Text {
    fn escape(text: &str) -> String {
        escape(text)
    }

    fn strong(inner: &str) -> String {
        format!("*{inner}*")
    }

    fn link(label: &str, url: &str) -> String {
        format!("<{}|{}>", url_escape(url), escape(label))
    }

    fn mention(person: &super::Person) -> String {
        // The id was checked at load to be a plain word (letters, digits, `._%+@-`).
        match person.google_chat.as_deref() {
            Some(id) if !id.is_empty() => format!("<users/{id}>"),
            _ => escape(&person.name),
        }
    }
}

impl super::TextMarkup for Text {
    const BREAK: &'static str = "\n";

    const LIST: super::ListStyle = super::ListStyle {
        title: |title| format!("\n*{title}*"),
        bullet: "\n• ",
        more: "\n",
        limit: MAX_TEXT_BYTES,
        measure: super::bytes,
    };

    fn rendered(rendered: &Rendered) -> String {
        if rendered.google_chat.is_empty() {
            // Stored before Google Chat existed: its plain text, escaped.
            let lines: Vec<String> = rendered.text.lines().map(escape).collect();
            lines.join("\n")
        } else {
            rendered.google_chat.clone()
        }
    }
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

/// Makes a user-supplied string inert in Google Chat text-message markup.
///
/// Google documents the markup (`*bold*`, `_italic_`, `~strike~`, `` `code` ``, `<url|text>`,
/// `<users/…>`) but no escape for it: no backslash escape, and HTML entities are shown as typed
/// (`&gt;` appears literally, librenms/librenms#18234), so Slack's `&lt;` would be visible noise.
/// The characters that open markup are therefore replaced by look-alikes that no parser treats
/// as markup: `<` `>` → `‹` `›` (no link, no mention), `*` → `∗`, `_` → `ˍ`, `~` → `∼`,
/// `` ` `` → `ˋ`. `&` gets a word joiner (U+2060, invisible) after it, so that if a client ever
/// decoded entities, `&amp;`/`&lt;` would still not form one. Line breaks become spaces so a
/// title cannot start a list or a block.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push('‹'),
            '>' => out.push('›'),
            '*' => out.push('∗'),
            '_' => out.push('ˍ'),
            '~' => out.push('∼'),
            '`' => out.push('ˋ'),
            '&' => out.push_str("&\u{2060}"),
            '\r' | '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// A URL as the target of a link `<url|text>`: `|` and `>` (which would end the target) and `<`,
/// space are percent-encoded.
pub fn url_escape(url: &str) -> String {
    encode_chars(url, &[' ', '|', '<', '>'])
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
