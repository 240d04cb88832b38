//! The digest: a room's list of PRs waiting for review (or one person's list), as a chat
//! document (`notify::doc`). Pure: `now` and the settings decide ages and colour.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::doc::{clip, format_age, Block, Color, Doc, Headline, Inline, List, Person};
use super::message::list;
use crate::config::SweepSettings;
use crate::domain::{AuthorReason, BuildState, PullRequestView, RoomDigest, Turn};

/// Names one list of a digest line shows (who approved, who asked for changes, who is waited
/// for); the rest are counted (`and 295 others`), so that a line stays short whatever the PR
/// holds and one PR never crowds the others out of the digest.
pub const NAMES_SHOWN: usize = 5;

/// ` and N others` after the first `NAMES_SHOWN` of `total` names; empty when all are shown.
fn and_others(total: usize) -> String {
    match total.saturating_sub(NAMES_SHOWN) {
        0 => String::new(),
        n => format!(" and {n} other{}", if n == 1 { "" } else { "s" }),
    }
}

/// The first `NAMES_SHOWN` names, then how many others.
fn names(all: &[String]) -> String {
    format!(
        "{}{}",
        list(&all[..all.len().min(NAMES_SHOWN)]),
        and_others(all.len())
    )
}

/// How long a PR has waited, and whether that is past `escalate_after` (counting working days
/// only, if so configured).
pub fn age(pr: &PullRequestView, settings: &SweepSettings, now: DateTime<Utc>) -> (Duration, bool) {
    let total = (now - pr.created_on).to_std().unwrap_or_default();
    let counted = if settings.escalate_working_days_only {
        settings
            .calendar
            .working_time(pr.created_on, now)
            .to_std()
            .unwrap_or_default()
    } else {
        total
    };
    (total, counted > settings.escalate_after)
}

/// Whether any PR of the digest has waited past the escalation threshold (the digest is red).
pub fn escalated(digest: &RoomDigest, settings: &SweepSettings, now: DateTime<Utc>) -> bool {
    digest
        .waiting_review
        .iter()
        .chain(&digest.waiting_author)
        .any(|pr| age(pr, settings, now).1)
}

/// The digest message for one room. Pure: `now` and the settings decide ages and colour.
pub fn render(
    room: &str,
    digest: &RoomDigest,
    settings: &SweepSettings,
    now: DateTime<Utc>,
) -> Doc {
    let heading = if digest.is_empty() {
        "All clear: no pull request is waiting for review".to_owned()
    } else {
        format!(
            "{} pull request{} waiting for review{}{}",
            digest.review_total,
            if digest.review_total == 1 { "" } else { "s" },
            if digest.author_total > 0 {
                format!(", {} waiting on their author", digest.author_total)
            } else {
                String::new()
            },
            if digest.merge_total > 0 {
                format!(", {} ready to merge", digest.merge_total)
            } else {
                String::new()
            }
        )
    };
    render_list(&heading, Some(room), digest, settings, now)
}

/// A PR's line in a list: title (a link), place, author, approvals (and, in the author's list,
/// who asked for changes), age (strong once escalated), a failing or running build (strong),
/// and in the review list the requested reviewers still to act (people, so chat mentions where
/// `[[users]]` maps them).
fn line(
    pr: &PullRequestView,
    author_list: bool,
    settings: &SweepSettings,
    now: DateTime<Utc>,
) -> Vec<Inline> {
    let (total, old) = age(pr, settings, now);
    let approvals = format!(
        "{}/{} approvals{}",
        pr.approvals,
        pr.required_approvals,
        if pr.approved_by.is_empty() {
            String::new()
        } else {
            format!(" ({})", names(&pr.approved_by))
        }
    );
    let mut details = vec![approvals];
    if author_list && !pr.changes_requested_by.is_empty() {
        details.push(format!(
            "changes requested by {}",
            names(&pr.changes_requested_by)
        ));
    }
    let mut out = vec![
        Inline::link(clip(&pr.title), pr.url.as_deref()),
        Inline::fixed(" ("),
        Inline::text(format!("{} #{}", pr.repository, pr.number)),
        Inline::fixed(") by "),
        Inline::text(clip(&pr.author)),
        Inline::fixed(" · "),
        Inline::text(details.join(" · ")),
        Inline::fixed(" · "),
    ];
    let age_text = Inline::text(format!("{} old", format_age(total)));
    out.push(if old {
        Inline::Strong(vec![age_text])
    } else {
        age_text
    });
    let build = match pr.build_state {
        Some(BuildState::Failed) => Some("build FAILED"),
        Some(BuildState::InProgress) => Some("build running"),
        _ => None,
    };
    if let Some(build) = build {
        out.push(Inline::fixed(" · "));
        out.push(Inline::Strong(vec![Inline::fixed(build)]));
    }
    if !author_list && !pr.waiting_for.is_empty() {
        out.push(Inline::fixed(" · waiting for "));
        for (i, reviewer) in pr.waiting_for.iter().take(NAMES_SHOWN).enumerate() {
            if i > 0 {
                out.push(Inline::fixed(", "));
            }
            out.push(Inline::Person(Person::of(reviewer, clip(&reviewer.name))));
        }
        let others = and_others(pr.waiting_for.len());
        if !others.is_empty() {
            out.push(Inline::text(others));
        }
    }
    out
}

/// Why a PR is its author's to act on, where its line does not already say so: `draft`,
/// `1 open task`, `build stopped`, `ready to merge` (a request for changes and a failed build
/// are on the line already); `None` otherwise.
fn turn_note(pr: &PullRequestView) -> Option<String> {
    match pr.turn.as_ref()? {
        Turn::Merge => Some("ready to merge".into()),
        Turn::Author(AuthorReason::Draft) => Some("draft".into()),
        Turn::Author(AuthorReason::BuildStopped) => Some("build stopped".into()),
        Turn::Author(AuthorReason::OpenTasks) => {
            let n = pr.open_tasks.unwrap_or(0);
            Some(format!("{n} open task{}", if n == 1 { "" } else { "s" }))
        }
        Turn::Author(AuthorReason::ChangesRequested | AuthorReason::BuildFailed)
        | Turn::Reviewers { .. } => None,
    }
}

/// A line of the asker's own list: the author's line, then why it is their turn.
fn own_line(pr: &PullRequestView, settings: &SweepSettings, now: DateTime<Utc>) -> Vec<Inline> {
    let mut out = line(pr, true, settings, now);
    if let Some(note) = turn_note(pr) {
        out.push(Inline::fixed(" · "));
        out.push(Inline::text(note));
    }
    out
}

/// A line of the "Ready to merge" list: the PR's line, then who can merge it (its author, a
/// chat mention where `[[users]]` maps them).
fn merge_line(pr: &PullRequestView, settings: &SweepSettings, now: DateTime<Utc>) -> Vec<Inline> {
    let mut out = line(pr, true, settings, now);
    let name = if pr.author_as.name.is_empty() {
        &pr.author
    } else {
        &pr.author_as.name
    };
    out.push(Inline::fixed(" · can merge: "));
    out.push(Inline::Person(Person::of(&pr.author_as, clip(name))));
    out
}

/// One person's `/reviews` answer (issue 23): the PRs in `room` on which they are an owed
/// reviewer (`owed`, listed as a digest lists them), then, titled `Your turn: N`, their own PRs
/// whose turn is theirs (`mine`: changes requested, a failed build, open tasks, a draft, or
/// ready to merge). Green when both are empty ("Nothing is waiting for your review here."),
/// red when an owed review has waited past `escalate_after`, else yellow. Never notifies and
/// never pings: it answers the asker.
pub fn render_personal(
    room: &str,
    owed: &[PullRequestView],
    mine: &[PullRequestView],
    settings: &SweepSettings,
    now: DateTime<Utc>,
) -> Doc {
    let heading = match owed.len() {
        0 if mine.is_empty() => "Nothing is waiting for your review here.".to_owned(),
        0 => "No pull request is waiting for your review".to_owned(),
        n => format!(
            "{n} pull request{} waiting for your review",
            if n == 1 { "" } else { "s" }
        ),
    };
    if owed.is_empty() && mine.is_empty() {
        return Doc::lines(Color::Green, [heading.as_str()]);
    }
    let color = if owed.iter().any(|pr| age(pr, settings, now).1) {
        Color::Red
    } else {
        Color::Yellow
    };
    let mut blocks = Vec::new();
    if !owed.is_empty() {
        blocks.push(Block::List(List {
            title: None,
            items: owed
                .iter()
                .map(|pr| line(pr, false, settings, now))
                .collect(),
            total: owed.len(),
        }));
    }
    if !mine.is_empty() {
        blocks.push(Block::List(List {
            title: Some(format!("Your turn: {}", mine.len()).into()),
            items: mine.iter().map(|pr| own_line(pr, settings, now)).collect(),
            total: mine.len(),
        }));
    }
    Doc {
        color,
        notify: false,
        headline: Some(Headline {
            text: heading,
            room: Some(room.to_owned()),
        }),
        blocks,
        ping: Vec::new(),
    }
}

/// A heading (strong; the room after it, if any), then the digest's PRs: those waiting for
/// review, then those waiting on their author, then those ready to merge (with who can merge), each list cut by the chat's formatter to what
/// fits with "and N more". With `[sweep] hipchat_mention_ping`, the requested reviewers of the
/// review list who have a HipChat mention name are the message's `ping`.
pub fn render_list(
    heading: &str,
    room: Option<&str>,
    digest: &RoomDigest,
    settings: &SweepSettings,
    now: DateTime<Utc>,
) -> Doc {
    let color = if digest.is_empty() {
        Color::Green
    } else if escalated(digest, settings, now) {
        Color::Red
    } else {
        Color::Yellow
    };
    let mut blocks = Vec::new();
    if digest.review_total > 0 {
        blocks.push(Block::List(List {
            title: None,
            items: digest
                .waiting_review
                .iter()
                .map(|pr| line(pr, false, settings, now))
                .collect(),
            total: digest.review_total,
        }));
    }
    if digest.author_total > 0 {
        blocks.push(Block::List(List {
            title: Some("Waiting on the author".into()),
            items: digest
                .waiting_author
                .iter()
                .map(|pr| line(pr, true, settings, now))
                .collect(),
            total: digest.author_total,
        }));
    }
    if digest.merge_total > 0 {
        blocks.push(Block::List(List {
            title: Some("Ready to merge".into()),
            items: digest
                .ready_to_merge
                .iter()
                .map(|pr| merge_line(pr, settings, now))
                .collect(),
            total: digest.merge_total,
        }));
    }
    let mut ping: Vec<Person> = Vec::new();
    if settings.hipchat_mention_ping {
        for reviewer in digest.waiting_review.iter().flat_map(|pr| &pr.waiting_for) {
            let Some(name) = reviewer.hipchat.as_deref() else {
                continue;
            };
            let name = name.trim_start_matches('@');
            if !ping.iter().any(|p| p.hipchat.as_deref() == Some(name)) {
                ping.push(Person {
                    name: clip(&reviewer.name),
                    hipchat: Some(name.to_owned()),
                    slack: None,
                    google_chat: None,
                    teams: None,
                });
            }
        }
    }
    Doc {
        color,
        notify: !digest.is_empty(),
        headline: Some(Headline {
            text: heading.to_owned(),
            room: room.map(str::to_owned),
        }),
        blocks,
        ping,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::local;
    use crate::domain::RepositoryKey;
    use crate::notify::format::hipchat::{self, MAX_MESSAGE_CHARS};
    use crate::notify::test_support::r;
    use chrono::TimeZone;

    fn pr(
        n: i64,
        created: DateTime<Utc>,
        approvals: &[&str],
        changes: &[&str],
        build: Option<&str>,
    ) -> PullRequestView {
        PullRequestView {
            key: RepositoryKey::cloud(Some("{r}"), "acme/api"),
            repository: "acme/api".into(),
            number: n,
            title: format!("Change <{n}> & more"),
            url: Some(format!("https://bitbucket.org/acme/api/pull-requests/{n}")),
            author: "Ann".into(),
            created_on: created,
            approvals: approvals.len() as u32,
            approved_by: approvals.iter().map(|s| s.to_string()).collect(),
            required_approvals: 2,
            changes_requested_by: changes.iter().map(|s| s.to_string()).collect(),
            build_state: build.and_then(BuildState::parse),
            ..PullRequestView::default()
        }
    }

    #[test]
    fn a_mix_of_prs() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let h = |hours: i64| now - chrono::Duration::hours(hours);
        let digest = RoomDigest {
            waiting_review: vec![
                pr(1, h(50), &["Bob"], &[], Some("FAILED")),
                pr(2, h(5), &[], &[], None),
            ],
            waiting_author: vec![pr(3, h(30), &[], &["Carol"], Some("INPROGRESS"))],
            review_total: 2,
            author_total: 1,
            ..RoomDigest::default()
        };
        let m = r(render("backend", &digest, &SweepSettings::default(), now));
        assert_eq!(m.color, Color::Yellow);
        assert_eq!(
            m.html,
            "<b>2 pull requests waiting for review, 1 waiting on their author</b> (backend)\
             <br>• <a href=\"https://bitbucket.org/acme/api/pull-requests/1\">Change &lt;1&gt; &amp; more</a> (acme/api #1) by Ann · 1/2 approvals (Bob) · 2d 2h old · <b>build FAILED</b>\
             <br>• <a href=\"https://bitbucket.org/acme/api/pull-requests/2\">Change &lt;2&gt; &amp; more</a> (acme/api #2) by Ann · 0/2 approvals · 5h old\
             <br><b>Waiting on the author</b>\
             <br>• <a href=\"https://bitbucket.org/acme/api/pull-requests/3\">Change &lt;3&gt; &amp; more</a> (acme/api #3) by Ann · 0/2 approvals · changes requested by Carol · 1d 6h old · <b>build running</b>"
        );
        assert_eq!(
            m.text,
            "2 pull requests waiting for review, 1 waiting on their author (backend)\n  \
             - Change <1> & more (acme/api #1) by Ann · 1/2 approvals (Bob) · 2d 2h old · build FAILED <https://bitbucket.org/acme/api/pull-requests/1>\n  \
             - Change <2> & more (acme/api #2) by Ann · 0/2 approvals · 5h old <https://bitbucket.org/acme/api/pull-requests/2>\n\
             Waiting on the author:\n  \
             - Change <3> & more (acme/api #3) by Ann · 0/2 approvals · changes requested by Carol · 1d 6h old · build running <https://bitbucket.org/acme/api/pull-requests/3>"
        );
        assert!(m.slack.contains(
            "<https://bitbucket.org/acme/api/pull-requests/1|Change &lt;1&gt; &amp; more>"
        ));
    }

    #[test]
    fn reviewers_to_ping_on_hipchat() {
        use crate::domain::Reviewer;
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let reviewer = |name: &str, hipchat: Option<&str>| Reviewer {
            name: name.into(),
            hipchat: hipchat.map(str::to_owned),
            ..Reviewer::default()
        };
        let mut first = pr(1, now - chrono::Duration::hours(2), &[], &[], None);
        first.waiting_for = vec![reviewer("Bob", Some("@bob")), reviewer("Dee", None)];
        let mut second = pr(2, now - chrono::Duration::hours(1), &[], &[], None);
        second.waiting_for = vec![reviewer("Bob", Some("bob")), reviewer("Carl", Some("carl"))];
        let mut waiting_on_author = pr(3, now, &[], &["Eve"], None);
        waiting_on_author.waiting_for = vec![reviewer("Finn", Some("finn"))];
        let digest = RoomDigest {
            waiting_review: vec![first, second],
            waiting_author: vec![waiting_on_author],
            review_total: 2,
            author_total: 1,
            ..RoomDigest::default()
        };
        let m = render("r", &digest, &SweepSettings::default(), now);
        // Each once, in order; nobody from the waiting-on-author list (the author acts next).
        let ping = hipchat::ping(&m).unwrap();
        assert_eq!(
            ping["message"],
            "@bob @carl: pull requests are waiting for your review (see above)"
        );
        let off = SweepSettings {
            hipchat_mention_ping: false,
            ..SweepSettings::default()
        };
        assert!(render("r", &digest, &off, now).ping.is_empty());
        assert_eq!(hipchat::ping(&render("r", &digest, &off, now)), None);
    }

    #[test]
    fn red_after_three_days() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let just_under = RoomDigest {
            waiting_review: vec![pr(1, now - chrono::Duration::hours(71), &[], &[], None)],
            review_total: 1,
            ..RoomDigest::default()
        };
        assert_eq!(
            render("r", &just_under, &SweepSettings::default(), now).color,
            Color::Yellow
        );
        let over = RoomDigest {
            waiting_review: vec![pr(1, now - chrono::Duration::hours(73), &[], &[], None)],
            review_total: 1,
            ..RoomDigest::default()
        };
        let m = r(render("r", &over, &SweepSettings::default(), now));
        assert_eq!(m.color, Color::Red);
        assert!(m.html.contains("<b>3d 1h old</b>"), "{}", m.html);
    }

    #[test]
    fn working_days_across_a_weekend() {
        let settings = SweepSettings {
            escalate_working_days_only: true,
            ..SweepSettings::default()
        };
        let tz = settings.calendar.tz;
        // Opened Thursday 09:00, now Monday 10:00: 97 h old, but only Thu+Fri+1 h on Monday
        // (49 h) of working time: not escalated. Wednesday 09:00 → 73 working hours: red.
        let now = local(tz, 2026, 11, 30, 10, 0);
        let thursday = RoomDigest {
            waiting_review: vec![pr(1, local(tz, 2026, 11, 26, 9, 0), &[], &[], None)],
            review_total: 1,
            ..RoomDigest::default()
        };
        assert_eq!(render("r", &thursday, &settings, now).color, Color::Yellow);
        assert_eq!(
            render("r", &thursday, &SweepSettings::default(), now).color,
            Color::Red
        );
        let wednesday = RoomDigest {
            waiting_review: vec![pr(1, local(tz, 2026, 11, 25, 9, 0), &[], &[], None)],
            review_total: 1,
            ..RoomDigest::default()
        };
        assert_eq!(render("r", &wednesday, &settings, now).color, Color::Red);
    }

    #[test]
    fn long_lists_are_cut_with_and_n_more() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let mut digest = RoomDigest::default();
        for n in 0..80 {
            let mut p = pr(n, now - chrono::Duration::hours(1), &[], &[], None);
            p.title =
                "A rather long title about a refactoring of the payment gateway adapters".into();
            digest.waiting_review.push(p);
        }
        digest.review_total = 5_000;
        let m = r(render("r", &digest, &SweepSettings::default(), now));
        assert!(
            m.html.chars().count() <= MAX_MESSAGE_CHARS,
            "{}",
            m.html.chars().count()
        );
        let shown = m.html.matches("<br>• ").count();
        assert!(shown > 10, "{shown}");
        assert!(
            m.html.ends_with(&format!("<br>and {} more", 5_000 - shown)),
            "{}",
            &m.html[m.html.len() - 40..]
        );
    }

    #[test]
    fn ages() {
        assert_eq!(format_age(Duration::from_secs(5 * 3600 + 59)), "5h");
        assert_eq!(format_age(Duration::from_secs(48 * 3600)), "2d");
        assert_eq!(format_age(Duration::from_secs(50 * 3600)), "2d 2h");
    }
}
