//! Rendering a PR's news: its current state plus what happened, as HipChat HTML, Slack text,
//! Teams (Adaptive Card) markdown, Google Chat text and plain text. Escaping for every format
//! lives here (`escape_html`, `escape_slack`, `escape_teams`, `escape_google_chat`, `clip`), and
//! every user-supplied string goes through it.

use std::collections::BTreeSet;

use crate::domain::{NotifyEvent, PullRequestView};

/// HipChat's room notification limit.
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// Longest user-supplied string (title, names) put in a message.
const MAX_FIELD_CHARS: usize = 300;

/// A message's colour, which says how urgent it is: red for a failing build or an escalated
/// digest, purple for changes requested, green for ready or fixed, yellow for needs review, gray
/// for merged or declined. Serialised in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Yellow,
    Green,
    Red,
    Purple,
    Gray,
}

impl Color {
    /// The name HipChat v2's room notification `color` field takes.
    pub fn hipchat(self) -> &'static str {
        match self {
            Color::Yellow => "yellow",
            Color::Green => "green",
            Color::Red => "red",
            Color::Purple => "purple",
            Color::Gray => "gray",
        }
    }

    /// An `#rrggbb` colour for a Slack attachment's `color`.
    pub fn hex(self) -> &'static str {
        match self {
            Color::Yellow => "#f2c744",
            Color::Green => "#2eb67d",
            Color::Red => "#e01e5a",
            Color::Purple => "#7c3aed",
            Color::Gray => "#9ca3af",
        }
    }
}

/// One chat message in every format a sink needs; stored as JSON for a digest
/// (`outbox.payload`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// The colour (HipChat's `color`, Slack's attachment colour).
    pub color: Color,
    /// Whether HipChat should alert people (not for gray, informational ones).
    pub notify: bool,
    /// HipChat HTML (`message_format: html`), every user-supplied string escaped.
    pub html: String,
    /// Slack `mrkdwn`.
    pub slack: String,
    /// Plain text, for the console and for the record in `outbox.message`.
    pub text: String,
    /// Microsoft Teams Adaptive Card TextBlock markdown: paragraphs separated by `\n\n`, the
    /// first one the heading (`teams::body` makes it bold and coloured), list items within a
    /// paragraph by `\n`. Empty in rows stored before Teams existed (`teams::body` then falls
    /// back to the plain text).
    #[serde(default)]
    pub teams: String,
    /// Google Chat text-message markup (`*bold*`, `<url|text>`), without the colour emoji that
    /// `google_chat::body` puts in front. Empty in rows stored before Google Chat existed.
    #[serde(default)]
    pub google_chat: String,
    /// HipChat mention names (without `@`) of the people a digest asks to act. HipChat pings an
    /// `@mention` only in `message_format: text`, so the dispatcher follows an HTML digest to a
    /// HipChat room with a short text message naming them (`[sweep] hipchat_mention_ping`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
}

impl Message {
    /// A message of one line of our own words (no markup), every format escaped.
    pub fn plain(color: Color, text: &str) -> Message {
        Message {
            color,
            notify: false,
            html: escape_html(text),
            slack: escape_slack(text),
            text: text.to_owned(),
            teams: escape_teams(text),
            google_chat: escape_google_chat(text),
            mentions: Vec::new(),
        }
    }

    /// Adds a line (no markup) to every format.
    pub fn push_line(&mut self, line: &str) {
        self.html.push_str(&format!("<br>{}", escape_html(line)));
        self.slack.push_str(&format!("\n{}", escape_slack(line)));
        self.text.push_str(&format!("\n{line}"));
        self.teams.push_str(&format!("\n\n{}", escape_teams(line)));
        self.google_chat
            .push_str(&format!("\n{}", escape_google_chat(line)));
    }
}

/// The backlog of a room back from an outage, as few messages as fit: `heading` (our words,
/// escaped here; ` (k/n)` added when it takes several), then each item's message whole, in order;
/// each message with how many items it lists.
/// Every message stays within `MAX_MESSAGE_CHARS` in every format; no item is dropped (one too
/// long to share a message goes alone). Yellow and notifying, like a PR's news.
pub fn summary(heading: &str, items: &[Message]) -> Vec<(Message, usize)> {
    // Room for the heading and its part number, in the longest format.
    let budget = MAX_MESSAGE_CHARS.saturating_sub(heading.chars().count() * 2 + 64);
    let size = |m: &Message| {
        [&m.html, &m.slack, &m.text, &m.teams, &m.google_chat]
            .iter()
            .map(|f| f.chars().count() + 8)
            .max()
            .unwrap_or_default()
    };
    let mut parts: Vec<Vec<&Message>> = Vec::new();
    let mut used = usize::MAX;
    for item in items {
        let n = size(item);
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
        .map(|(i, part)| {
            let heading = if count > 1 {
                format!("{heading} ({}/{count})", i + 1)
            } else {
                heading.to_owned()
            };
            let mut message = Message::plain(Color::Yellow, &heading);
            message.notify = true;
            message.html = format!("<b>{}</b>", message.html);
            message.slack = format!("*{}*", message.slack);
            message.google_chat = format!("*{}*", message.google_chat);
            for item in &part {
                message.html.push_str(&format!("<br><br>{}", item.html));
                message.slack.push_str(&format!("\n\n{}", item.slack));
                message.text.push_str(&format!("\n{}", item.text));
                message.teams.push_str(&format!("\n\n{}", item.teams));
                message
                    .google_chat
                    .push_str(&format!("\n\n{}", item.google_chat));
            }
            (message, part.len())
        })
        .collect()
}

/// Cuts a user-supplied string to 300 characters, ending a shortened one with `…`.
pub fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_FIELD_CHARS {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX_FIELD_CHARS - 1).collect();
        out.push('…');
        out
    }
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HipChat's HTML.
pub fn escape_html(s: &str) -> String {
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

/// Slack asks for exactly these three to be escaped in message text.
pub fn escape_slack(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Makes a user-supplied string inert in Adaptive Card TextBlock markdown (Teams).
///
/// Adaptive Cards take a CommonMark subset (bold, italic, lists, `[text](url)`), and CommonMark
/// lets any ASCII punctuation be backslash-escaped, so every character that can open markup is:
/// `\ * _ [ ] ( ) # > ` ~ |`, plus `<` (autolinks, `<at>` tags), `&` (so `&amp;` stays literal
/// instead of becoming an entity), `!` (images) and `{ }` (the `{{DATE(…)}}` and `{{TIME(…)}}`
/// functions). A list marker (`-`, `+`, `1.`) only counts at the start of a line, so it is escaped
/// only there. Even a host that ignored the backslashes could not form a link: `](` never stands
/// side by side. Line breaks become spaces so a title cannot start a list or a paragraph.
pub fn escape_teams(s: &str) -> String {
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
pub fn escape_google_chat(s: &str) -> String {
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

/// A URL as the destination of a Teams markdown link `[text](url)`: the characters that would end
/// or break the destination are percent-encoded.
pub fn teams_url(url: &str) -> String {
    encode_chars(url, &[' ', '(', ')', '<', '>', '\\', '[', ']'])
}

/// A URL as the target of a Google Chat link `<url|text>`: `|` and `>` (which would end the
/// target) and `<`, space are percent-encoded.
pub fn google_chat_url(url: &str) -> String {
    encode_chars(url, &[' ', '|', '<', '>'])
}

fn encode_chars(url: &str, chars: &[char]) -> String {
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

/// Names joined with `, `, each clipped (not escaped: escape the result for its format).
pub fn list(names: &[String]) -> String {
    names.iter().map(|n| clip(n)).collect::<Vec<_>>().join(", ")
}

/// The headline and colour: the most important thing that happened, judged on the current state.
fn headline(events: &BTreeSet<NotifyEvent>, pr: &PullRequestView) -> (Color, String) {
    let approvals = pr.approved_by.len();
    let ready = approvals as u32 >= pr.required_approvals;
    let failing = pr.build_state.as_deref() == Some("FAILED");
    if events.contains(&NotifyEvent::Merged) {
        return (Color::Gray, "Merged".into());
    }
    if events.contains(&NotifyEvent::Declined) {
        return (Color::Gray, "Declined".into());
    }
    if events.contains(&NotifyEvent::BuildFailed) && failing {
        return (Color::Red, "Build failed".into());
    }
    if events.contains(&NotifyEvent::ChangesRequested) && !pr.changes_requested_by.is_empty() {
        return (
            Color::Purple,
            format!("Changes requested by {}", list(&pr.changes_requested_by)),
        );
    }
    if ready && (events.contains(&NotifyEvent::Approvals) || events.contains(&NotifyEvent::Opened))
    {
        return (Color::Green, "Ready to merge".into());
    }
    if events.contains(&NotifyEvent::BuildRecovered) && !failing {
        return (Color::Green, "Build fixed".into());
    }
    if events.contains(&NotifyEvent::Approvals) {
        return (
            Color::Yellow,
            format!("{approvals}/{} approvals", pr.required_approvals),
        );
    }
    (Color::Yellow, "Needs review".into())
}

/// A PR's message: a headline for the most important of `events`, judged on the PR's current
/// state, then its title, author, approvals and builds.
pub fn render(events: &BTreeSet<NotifyEvent>, pr: &PullRequestView) -> Message {
    let (color, head) = headline(events, pr);
    let title = clip(&pr.title);
    let author = clip(&pr.author);
    let approvals = format!(
        "{}/{} approvals{}",
        pr.approved_by.len(),
        pr.required_approvals,
        if pr.approved_by.is_empty() {
            String::new()
        } else {
            format!(": {}", list(&pr.approved_by))
        }
    );
    let changes = (!pr.changes_requested_by.is_empty())
        .then(|| format!("changes requested by {}", list(&pr.changes_requested_by)));
    let build = pr.build_state.as_deref().map(|state| match state {
        "FAILED" => "build FAILED".to_owned(),
        "SUCCESSFUL" => "build passed".to_owned(),
        "INPROGRESS" => "build running".to_owned(),
        other => format!("build {}", other.to_lowercase()),
    });
    let place = format!("{} #{}", pr.repository, pr.number);

    // Plain text.
    let mut details = vec![approvals.clone()];
    details.extend(changes.clone());
    details.extend(build.clone());
    let text = format!(
        "{head}: {title} ({place}) by {author}{} — {}",
        pr.url
            .as_deref()
            .map(|u| format!(" <{u}>"))
            .unwrap_or_default(),
        details.join(" · ")
    );

    // HipChat HTML.
    let link = |label: &str, url: Option<&str>| match url {
        Some(url) => format!(
            "<a href=\"{}\">{}</a>",
            escape_html(url),
            escape_html(label)
        ),
        None => escape_html(label),
    };
    let mut html_details = vec![escape_html(&approvals)];
    if let Some(c) = &changes {
        html_details.push(escape_html(c));
    }
    if let Some(b) = &build {
        let failing: Vec<String> = pr
            .failed_builds
            .iter()
            .map(|(name, url)| link(&clip(name), url.as_deref()))
            .collect();
        if failing.is_empty() || pr.build_state.as_deref() != Some("FAILED") {
            html_details.push(escape_html(b));
        } else {
            html_details.push(format!("{}: {}", escape_html(b), failing.join(", ")));
        }
    }
    let mut html = format!(
        "<b>{}</b>: {} ({}) by {}<br>{}",
        escape_html(&head),
        link(&title, pr.url.as_deref()),
        escape_html(&place),
        escape_html(&author),
        html_details.join(" · ")
    );
    if html.chars().count() > MAX_MESSAGE_CHARS {
        // Only reachable with pathological data; a short message beats a refused one.
        html = format!("<b>{}</b>: {}", escape_html(&head), escape_html(&place));
    }

    // Slack mrkdwn.
    let slack_link = match pr.url.as_deref() {
        Some(url) => format!("<{}|{}>", escape_slack(url), escape_slack(&title)),
        None => escape_slack(&title),
    };
    let mut slack_details = vec![escape_slack(&approvals)];
    slack_details.extend(changes.as_deref().map(escape_slack));
    if let Some(b) = &build {
        let failing: Vec<String> = pr
            .failed_builds
            .iter()
            .map(|(name, url)| match url {
                Some(url) => format!("<{}|{}>", escape_slack(url), escape_slack(&clip(name))),
                None => escape_slack(&clip(name)),
            })
            .collect();
        if failing.is_empty() || pr.build_state.as_deref() != Some("FAILED") {
            slack_details.push(escape_slack(b));
        } else {
            slack_details.push(format!("{}: {}", escape_slack(b), failing.join(", ")));
        }
    }
    let slack = format!(
        "*{}*: {} ({}) by {}\n{}",
        escape_slack(&head),
        slack_link,
        escape_slack(&place),
        escape_slack(&author),
        slack_details.join(" · ")
    );

    // Teams markdown: heading, PR line, details, one paragraph each.
    let failing_links = |link: &dyn Fn(&str, Option<&str>) -> String| -> Vec<String> {
        pr.failed_builds
            .iter()
            .map(|(name, url)| link(&clip(name), url.as_deref()))
            .collect()
    };
    let details_in = |escape: fn(&str) -> String, link: &dyn Fn(&str, Option<&str>) -> String| {
        let mut out = vec![escape(&approvals)];
        out.extend(changes.as_deref().map(escape));
        if let Some(b) = &build {
            let failing = failing_links(link);
            if failing.is_empty() || pr.build_state.as_deref() != Some("FAILED") {
                out.push(escape(b));
            } else {
                out.push(format!("{}: {}", escape(b), failing.join(", ")));
            }
        }
        out.join(" · ")
    };
    let teams_link = |label: &str, url: Option<&str>| match url {
        Some(url) => format!("[{}]({})", escape_teams(label), teams_url(url)),
        None => escape_teams(label),
    };
    let teams = format!(
        "{}\n\n{} ({}) by {}\n\n{}",
        escape_teams(&head),
        teams_link(&title, pr.url.as_deref()),
        escape_teams(&place),
        escape_teams(&author),
        details_in(escape_teams, &teams_link)
    );

    // Google Chat text.
    let chat_link = |label: &str, url: Option<&str>| match url {
        Some(url) => format!("<{}|{}>", google_chat_url(url), escape_google_chat(label)),
        None => escape_google_chat(label),
    };
    let google_chat = format!(
        "*{}*: {} ({}) by {}\n{}",
        escape_google_chat(&head),
        chat_link(&title, pr.url.as_deref()),
        escape_google_chat(&place),
        escape_google_chat(&author),
        details_in(escape_google_chat, &chat_link)
    );

    Message {
        color,
        notify: color != Color::Gray,
        html,
        slack,
        text,
        teams,
        google_chat,
        mentions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_summary_too_long_for_one_message_is_split_without_losing_an_item() {
        let items: Vec<Message> = (0..12)
            .map(|k| Message::plain(Color::Yellow, &format!("#{k} {}", "x".repeat(2_000))))
            .collect();
        let parts = summary(
            "While this room was unreachable, 12 pull requests changed:",
            &items,
        );
        assert_eq!(parts.len(), 3, "four 2 KB items fit in 10,000 characters");
        assert_eq!(parts.iter().map(|(_, n)| n).sum::<usize>(), 12);
        for (i, (part, _)) in parts.iter().enumerate() {
            for format in [
                &part.html,
                &part.slack,
                &part.text,
                &part.teams,
                &part.google_chat,
            ] {
                assert!(format.chars().count() <= MAX_MESSAGE_CHARS, "part {i}");
            }
            let heading = format!(
                "While this room was unreachable, 12 pull requests changed: ({}/3)",
                i + 1
            );
            assert!(part.text.starts_with(&heading), "{}", part.text);
        }
        let listed: String = parts.iter().map(|(p, _)| p.text.clone()).collect();
        for k in 0..12 {
            assert_eq!(listed.matches(&format!("#{k} x")).count(), 1, "#{k} once");
        }
        let one = summary("Heading <b>", &items[..1]);
        assert_eq!(one.len(), 1);
        assert!(one[0]
            .0
            .html
            .starts_with("<b>Heading &lt;b&gt;</b><br><br>#0 "));
    }
    use super::*;

    fn pr() -> PullRequestView {
        PullRequestView {
            repository: "acme/api".into(),
            number: 7,
            title: "Fix <script>alert(1)</script> & co".into(),
            url: Some("https://bitbucket.org/acme/api/pull-requests/7".into()),
            author: "Ann".into(),
            approved_by: vec!["Bob".into()],
            required_approvals: 2,
            changes_requested_by: vec![],
            build_state: None,
            failed_builds: vec![],
            ..PullRequestView::default()
        }
    }

    fn events(list: &[NotifyEvent]) -> BTreeSet<NotifyEvent> {
        list.iter().copied().collect()
    }

    #[test]
    fn html_escapes_user_strings() {
        let m = render(&events(&[NotifyEvent::Approvals]), &pr());
        assert_eq!(m.color, Color::Yellow);
        assert_eq!(
            m.html,
            "<b>1/2 approvals</b>: <a href=\"https://bitbucket.org/acme/api/pull-requests/7\">\
             Fix &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</a> (acme/api #7) by Ann<br>\
             1/2 approvals: Bob"
        );
        assert_eq!(
            m.slack,
            "*1/2 approvals*: <https://bitbucket.org/acme/api/pull-requests/7|Fix &lt;script&gt;alert(1)&lt;/script&gt; &amp; co> (acme/api #7) by Ann\n1/2 approvals: Bob"
        );
        assert_eq!(
            m.teams,
            "1/2 approvals\n\n\
             [Fix \\<script\\>alert\\(1\\)\\</script\\> \\& co](https://bitbucket.org/acme/api/pull-requests/7) (acme/api \\#7) by Ann\n\n\
             1/2 approvals: Bob"
        );
        assert_eq!(
            m.google_chat,
            "*1/2 approvals*: <https://bitbucket.org/acme/api/pull-requests/7|Fix ‹script›alert(1)‹/script› &\u{2060} co> (acme/api #7) by Ann\n1/2 approvals: Bob"
        );
    }

    #[test]
    fn plain_messages_in_every_format() {
        let mut m = Message::plain(Color::Gray, "Not *yours* <users/all>");
        m.push_line("Try `/reviews help` & [x](y)");
        assert_eq!(
            m.text,
            "Not *yours* <users/all>\nTry `/reviews help` & [x](y)"
        );
        assert_eq!(
            m.teams,
            "Not \\*yours\\* \\<users/all\\>\n\nTry \\`/reviews help\\` \\& \\[x\\]\\(y\\)"
        );
        assert_eq!(
            m.google_chat,
            "Not ∗yours∗ ‹users/all›\nTry ˋ/reviews helpˋ &\u{2060} [x](y)"
        );
    }

    #[test]
    fn colours_follow_the_state() {
        let mut p = pr();
        assert_eq!(
            render(&events(&[NotifyEvent::Opened]), &p).color,
            Color::Yellow
        );
        p.approved_by.push("Carl".into());
        let m = render(&events(&[NotifyEvent::Approvals]), &p);
        assert_eq!(
            (m.color, m.html.starts_with("<b>Ready to merge</b>")),
            (Color::Green, true)
        );
        p.changes_requested_by.push("Dee".into());
        assert_eq!(
            render(
                &events(&[NotifyEvent::ChangesRequested, NotifyEvent::Approvals]),
                &p
            )
            .color,
            Color::Purple
        );
        p.build_state = Some("FAILED".into());
        p.failed_builds
            .push(("CI #9".into(), Some("https://ci/9".into())));
        let m = render(&events(&[NotifyEvent::BuildFailed]), &p);
        assert_eq!(m.color, Color::Red);
        assert!(
            m.html
                .ends_with("build FAILED: <a href=\"https://ci/9\">CI #9</a>"),
            "{}",
            m.html
        );
        let m = render(
            &events(&[NotifyEvent::Merged, NotifyEvent::BuildFailed]),
            &p,
        );
        assert_eq!((m.color, m.notify), (Color::Gray, false));
        // A build that failed and was fixed within the window: green, not red.
        p.build_state = Some("SUCCESSFUL".into());
        assert_eq!(
            render(
                &events(&[NotifyEvent::BuildFailed, NotifyEvent::BuildRecovered]),
                &p
            )
            .color,
            Color::Green
        );
    }

    #[test]
    fn long_titles_are_clipped() {
        let mut p = pr();
        p.title = "x".repeat(20_000);
        let m = render(&events(&[NotifyEvent::Opened]), &p);
        assert!(m.html.chars().count() < 1_000);
        assert!(m.html.contains('…'));
    }
}
