//! Rendering a PR's news: its current state plus what happened, as a chat document
//! (`notify::doc`): a headline for the most important event, the PR, and its details. User text
//! enters only as plain text; each chat's formatter (`notify::format`) makes it inert in its markup.

use std::collections::BTreeSet;

use super::doc::{clip, Block, Color, Doc, FailedBuild, Inline, News, Person};
use crate::domain::{AuthorReason, BuildState, NotifyEvent, PullRequestView, Reviewer, Turn};

/// Names joined with `, `, each clipped.
pub fn list(names: &[String]) -> String {
    names.iter().map(|n| clip(n)).collect::<Vec<_>>().join(", ")
}

/// A person as a message names them: a mention where `[[users]]` maps them.
fn person(who: &Reviewer) -> Inline {
    Inline::Person(Person::of(who, clip(&who.name)))
}

/// `: Alice's turn` (the author must act).
fn authors_turn(pr: &PullRequestView) -> Vec<Inline> {
    vec![
        Inline::fixed(": "),
        person(&pr.author_as),
        Inline::fixed("'s turn"),
    ]
}

/// `{lead}Bob, Carol`: the owed reviewers; nothing when none is named.
fn owed(lead: &'static str, pr: &PullRequestView) -> Vec<Inline> {
    let mut out = Vec::new();
    for (i, reviewer) in pr.waiting_for.iter().enumerate() {
        out.push(Inline::fixed(if i == 0 { lead } else { ", " }));
        out.push(person(reviewer));
    }
    out
}

/// The headline, who must act (issue 23) and the colour: the most important thing that
/// happened, judged on the current state and turn.
fn headline(events: &BTreeSet<NotifyEvent>, pr: &PullRequestView) -> (Color, String, Vec<Inline>) {
    let approvals = pr.approved_by.len();
    let ready = approvals as u32 >= pr.required_approvals;
    let failing = pr.build_state == Some(BuildState::Failed);
    // Who must act, where the turn is known (a view filled from the store).
    let turn = pr.turn.as_ref();
    let authors = matches!(turn, Some(Turn::Author(_)));
    let when = |yes: bool, who: Vec<Inline>| if yes { who } else { Vec::new() };
    if events.contains(&NotifyEvent::Merged) {
        return (Color::Gray, "Merged".into(), Vec::new());
    }
    if events.contains(&NotifyEvent::Declined) {
        return (Color::Gray, "Declined".into(), Vec::new());
    }
    if events.contains(&NotifyEvent::Withdrawn) {
        // Only a room that edits its message hears it; it names the reason (`living`).
        return (Color::Gray, "No longer up for review".into(), Vec::new());
    }
    if events.contains(&NotifyEvent::BuildFailed) && failing {
        return (
            Color::Red,
            "Build failed".into(),
            when(authors, authors_turn(pr)),
        );
    }
    if events.contains(&NotifyEvent::ChangesRequested) && !pr.changes_requested_by.is_empty() {
        return (
            Color::Purple,
            format!("Changes requested by {}", list(&pr.changes_requested_by)),
            when(authors, authors_turn(pr)),
        );
    }
    let announced =
        events.contains(&NotifyEvent::Approvals) || events.contains(&NotifyEvent::Opened);
    if let (true, Some(Turn::Author(AuthorReason::OpenTasks))) = (announced, turn) {
        let tasks = pr.open_tasks.unwrap_or(0);
        let noun = if tasks == 1 { "task" } else { "tasks" };
        return (
            Color::Purple,
            format!("{tasks} open {noun}"),
            authors_turn(pr),
        );
    }
    if ready && announced {
        let who = match turn {
            Some(Turn::Merge) => vec![Inline::fixed(": "), person(&pr.author_as)],
            _ => Vec::new(),
        };
        return (Color::Green, "Ready to merge".into(), who);
    }
    if events.contains(&NotifyEvent::BuildRecovered) && !failing {
        return (Color::Green, "Build fixed".into(), Vec::new());
    }
    let reviewers = matches!(turn, Some(Turn::Reviewers { .. }));
    if events.contains(&NotifyEvent::Approvals) {
        return (
            Color::Yellow,
            format!("{approvals}/{} approvals", pr.required_approvals),
            when(reviewers, owed(", needs review from ", pr)),
        );
    }
    (
        Color::Yellow,
        "Needs review".into(),
        when(reviewers, owed(" from ", pr)),
    )
}

/// How a PR message names a build state: `build FAILED`, `build passed`, `build running`,
/// `build stopped`.
fn build_words(state: BuildState) -> &'static str {
    match state {
        BuildState::Failed => "build FAILED",
        BuildState::Successful => "build passed",
        BuildState::InProgress => "build running",
        BuildState::Stopped => "build stopped",
    }
}

/// A PR's news as a block (a message of its own, or an item of a backlog summary): a headline
/// for the most important of `events`, judged on the PR's current state, then its title (a
/// link), author, approvals, changes requested and builds (the failing ones named). With its
/// colour.
pub fn news(events: &BTreeSet<NotifyEvent>, pr: &PullRequestView) -> (Color, Block) {
    let (color, headline, who) = headline(events, pr);
    let place = format!("{} #{}", pr.repository, pr.number);
    let line = vec![
        Inline::link(clip(&pr.title), pr.url.as_deref()),
        Inline::fixed(" ("),
        Inline::text(place.clone()),
        Inline::fixed(") by "),
        Inline::text(clip(&pr.author)),
    ];
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
    let mut details = vec![Inline::text(approvals)];
    if !pr.changes_requested_by.is_empty() {
        details.push(Inline::fixed(" · "));
        details.push(Inline::text(format!(
            "changes requested by {}",
            list(&pr.changes_requested_by)
        )));
    }
    if let Some(state) = pr.build_state {
        details.push(Inline::fixed(" · "));
        details.push(Inline::fixed(build_words(state)));
        if state == BuildState::Failed && !pr.failed_builds.is_empty() {
            details.push(Inline::FailedBuilds(
                pr.failed_builds
                    .iter()
                    .map(|(name, url)| FailedBuild {
                        name: clip(name),
                        url: url.clone(),
                    })
                    .collect(),
            ));
        }
    }
    let news = News {
        headline,
        who,
        line,
        details,
        place,
    };
    (color, Block::News(news))
}

/// A PR's message: its news (`news`), alerting people unless it is gray (merged, declined).
pub fn render(events: &BTreeSet<NotifyEvent>, pr: &PullRequestView) -> Doc {
    let (color, block) = news(events, pr);
    Doc {
        color,
        notify: color != Color::Gray,
        headline: None,
        blocks: vec![block],
        ping: Vec::new(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_summary_too_long_for_one_message_is_split_without_losing_an_item() {
        let items: Vec<Block> = (0..12)
            .map(|k| {
                let mut p = pr();
                p.number = k;
                p.title = format!("#{k} {}", "x".repeat(2_000));
                news(&events(&[NotifyEvent::Opened]), &p).1
            })
            .collect();
        for format in [
            Format::HipChat,
            Format::Slack,
            Format::Teams,
            Format::GoogleChat,
            Format::Plain,
        ] {
            let parts = summary(
                "While this room was unreachable, 12 pull requests changed:",
                items.clone(),
                |b| format.size(b),
                MAX_MESSAGE_CHARS,
            );
            // Titles are clipped to 300 characters: 12 of them fit in one message.
            assert_eq!(parts.len(), 1, "{format:?}");
        }
        let long: Vec<Block> = items
            .iter()
            .map(|item| {
                let Block::News(n) = item else { unreachable!() };
                let mut n = n.clone();
                n.details = vec![Inline::text("y".repeat(2_000))];
                Block::News(n)
            })
            .collect();
        let parts = summary(
            "While this room was unreachable, 12 pull requests changed:",
            long,
            |b| Format::HipChat.size(b),
            MAX_MESSAGE_CHARS,
        );
        assert_eq!(parts.len(), 3, "four 2 KB items fit in 10,000 characters");
        assert_eq!(parts.iter().map(|(_, n)| n).sum::<usize>(), 12);
        for (i, (part, _)) in parts.iter().enumerate() {
            let r = r(part.clone());
            assert!(r.html.chars().count() <= MAX_MESSAGE_CHARS, "part {i}");
            let heading = format!(
                "While this room was unreachable, 12 pull requests changed: ({}/3)",
                i + 1
            );
            assert!(r.text.starts_with(&heading), "{}", r.text);
        }
        let listed: String = parts.iter().map(|(p, _)| r(p.clone()).text).collect();
        for k in 0..12 {
            assert_eq!(listed.matches(&format!("#{k} x")).count(), 1, "#{k} once");
        }
        let one = summary(
            "Heading <b>",
            items[..1].to_vec(),
            |b| Format::HipChat.size(b),
            MAX_MESSAGE_CHARS,
        );
        assert_eq!(one.len(), 1);
        assert!(r(one[0].0.clone())
            .html
            .starts_with("<b>Heading &lt;b&gt;</b><br><br><b>Needs review</b>: "));
    }
    use super::*;
    use crate::notify::doc::{summary, Inline};
    use crate::notify::format::hipchat::MAX_MESSAGE_CHARS;
    use crate::notify::format::Format;
    use crate::notify::test_support::r;

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
    fn user_strings_stay_text_in_every_format() {
        let m = r(render(&events(&[NotifyEvent::Approvals]), &pr()));
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
        let mut m = Doc::lines(Color::Gray, ["Not *yours* <users/all>"]);
        m.push_line("Try `/reviews help` & [x](y)");
        let m = r(m);
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
        let m = r(render(&events(&[NotifyEvent::Approvals]), &p));
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
        p.build_state = Some(BuildState::Failed);
        p.failed_builds
            .push(("CI #9".into(), Some("https://ci/9".into())));
        let m = r(render(&events(&[NotifyEvent::BuildFailed]), &p));
        assert_eq!(m.color, Color::Red);
        assert!(
            m.html
                .ends_with("build FAILED: <a href=\"https://ci/9\">CI #9</a>"),
            "{}",
            m.html
        );
        let m = r(render(
            &events(&[NotifyEvent::Merged, NotifyEvent::BuildFailed]),
            &p,
        ));
        assert_eq!((m.color, m.notify), (Color::Gray, false));
        // A build that failed and was fixed within the window: green, not red.
        p.build_state = Some(BuildState::Successful);
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
        let m = r(render(&events(&[NotifyEvent::Opened]), &p));
        assert!(m.html.chars().count() < 1_000);
        assert!(m.html.contains('…'));
    }
}
