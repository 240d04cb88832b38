//! The digest: a room's list of PRs waiting for review (or one person's list), as HipChat HTML,
//! Slack text, Teams markdown, Google Chat text and plain text. Pure: `now` and the settings decide ages and colour.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::message::{
    clip, escape_google_chat, escape_html, escape_slack, escape_teams, google_chat_url, list,
    teams_url, Color, Message, MAX_MESSAGE_CHARS,
};
use crate::config::SweepSettings;
use crate::domain::{PullRequestView, RoomDigest};

/// Names one list of a digest line shows (who approved, who asked for changes, who is waited
/// for); the rest are counted (`and 295 others`), so that a line stays short whatever the PR
/// holds and one PR never crowds the others out of the digest.
pub const NAMES_SHOWN: usize = 5;

/// Most people the HipChat ping after a digest names (only people the lines show are named).
pub const MAX_MENTIONS: usize = 30;

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

/// `5h`, `2d 3h`.
pub fn format_age(age: Duration) -> String {
    let hours = age.as_secs() / 3600;
    match (hours / 24, hours % 24) {
        (0, h) => format!("{h}h"),
        (d, 0) => format!("{d}d"),
        (d, h) => format!("{d}d {h}h"),
    }
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
) -> Message {
    let heading = if digest.is_empty() {
        "All clear: no pull request is waiting for review".to_owned()
    } else {
        format!(
            "{} pull request{} waiting for review{}",
            digest.review_total,
            if digest.review_total == 1 { "" } else { "s" },
            if digest.author_total > 0 {
                format!(", {} waiting on their author", digest.author_total)
            } else {
                String::new()
            }
        )
    };
    render_list(&heading, Some(room), digest, settings, now)
}

/// A heading (bold; the room after it, if any), then the digest's PRs, each list cut to fit with
/// "and N more".
pub fn render_list(
    heading: &str,
    room: Option<&str>,
    digest: &RoomDigest,
    settings: &SweepSettings,
    now: DateTime<Utc>,
) -> Message {
    let age = |pr: &PullRequestView| age(pr, settings, now);
    let color = if digest.is_empty() {
        Color::Green
    } else if escalated(digest, settings, now) {
        Color::Red
    } else {
        Color::Yellow
    };

    struct Line {
        html: String,
        slack: String,
        text: String,
        teams: String,
        google_chat: String,
    }
    let line = |pr: &PullRequestView, author_list: bool| -> Line {
        let (total, old) = age(pr);
        let title = clip(&pr.title);
        let place = format!("{} #{}", pr.repository, pr.number);
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
        let age_text = format!("{} old", format_age(total));
        let build = match pr.build_state.as_deref() {
            Some("FAILED") => Some("build FAILED".to_owned()),
            Some("INPROGRESS") => Some("build running".to_owned()),
            _ => None,
        };
        let author = clip(&pr.author);
        let mut html = match &pr.url {
            Some(url) => format!(
                "<a href=\"{}\">{}</a>",
                escape_html(url),
                escape_html(&title)
            ),
            None => escape_html(&title),
        };
        html.push_str(&format!(
            " ({}) by {} · {}",
            escape_html(&place),
            escape_html(&author),
            escape_html(&details.join(" · "))
        ));
        html.push_str(&if old {
            format!(" · <b>{age_text}</b>")
        } else {
            format!(" · {age_text}")
        });
        if let Some(b) = &build {
            html.push_str(&format!(" · <b>{b}</b>"));
        }
        // Requested reviewers still to act, as chat mentions where a [[users]] mapping says who
        // they are there.
        let waiting = (!author_list && !pr.waiting_for.is_empty())
            .then(|| &pr.waiting_for[..pr.waiting_for.len().min(NAMES_SHOWN)]);
        let others = and_others(pr.waiting_for.len());
        if let Some(people) = waiting {
            let names: Vec<String> = people
                .iter()
                .map(|r| match &r.hipchat {
                    Some(m) => format!("@{}", escape_html(m.trim_start_matches('@'))),
                    None => escape_html(&clip(&r.name)),
                })
                .collect();
            html.push_str(&format!(" · waiting for {}{others}", names.join(", ")));
        }
        let mut slack = match &pr.url {
            Some(url) => format!("<{}|{}>", escape_slack(url), escape_slack(&title)),
            None => escape_slack(&title),
        };
        slack.push_str(&format!(
            " ({}) by {} · {}",
            escape_slack(&place),
            escape_slack(&author),
            escape_slack(&details.join(" · "))
        ));
        slack.push_str(&if old {
            format!(" · *{age_text}*")
        } else {
            format!(" · {age_text}")
        });
        if let Some(b) = &build {
            slack.push_str(&format!(" · *{b}*"));
        }
        if let Some(people) = waiting {
            let names: Vec<String> = people
                .iter()
                .map(|r| match &r.slack {
                    Some(id) => format!("<@{}>", escape_slack(id)),
                    None => escape_slack(&clip(&r.name)),
                })
                .collect();
            slack.push_str(&format!(" · waiting for {}{others}", names.join(", ")));
        }
        let mut text = format!(
            "{title} ({place}) by {author} · {} · {age_text}",
            details.join(" · ")
        );
        if let Some(b) = &build {
            text.push_str(&format!(" · {b}"));
        }
        if let Some(people) = waiting {
            let names: Vec<String> = people.iter().map(|r| clip(&r.name)).collect();
            text.push_str(&format!(" · waiting for {}{others}", names.join(", ")));
        }
        if let Some(url) = &pr.url {
            text.push_str(&format!(" <{url}>"));
        }
        // Teams and Google Chat: no mention ids are mapped for them, so waiting reviewers are
        // named.
        let waiting_names = |escape: fn(&str) -> String| {
            waiting
                .map(|people| {
                    let names: Vec<String> =
                        people.iter().map(|r| escape(&clip(&r.name))).collect();
                    format!(" · waiting for {}{others}", names.join(", "))
                })
                .unwrap_or_default()
        };
        let mut teams = match &pr.url {
            Some(url) => format!("[{}]({})", escape_teams(&title), teams_url(url)),
            None => escape_teams(&title),
        };
        teams.push_str(&format!(
            " ({}) by {} · {}",
            escape_teams(&place),
            escape_teams(&author),
            escape_teams(&details.join(" · "))
        ));
        teams.push_str(&if old {
            format!(" · **{age_text}**")
        } else {
            format!(" · {age_text}")
        });
        if let Some(b) = &build {
            teams.push_str(&format!(" · **{b}**"));
        }
        teams.push_str(&waiting_names(escape_teams));
        let mut google_chat = match &pr.url {
            Some(url) => format!("<{}|{}>", google_chat_url(url), escape_google_chat(&title)),
            None => escape_google_chat(&title),
        };
        google_chat.push_str(&format!(
            " ({}) by {} · {}",
            escape_google_chat(&place),
            escape_google_chat(&author),
            escape_google_chat(&details.join(" · "))
        ));
        google_chat.push_str(&if old {
            format!(" · *{age_text}*")
        } else {
            format!(" · {age_text}")
        });
        if let Some(b) = &build {
            google_chat.push_str(&format!(" · *{b}*"));
        }
        google_chat.push_str(&waiting_names(escape_google_chat));
        Line {
            html,
            slack,
            text,
            teams,
            google_chat,
        }
    };

    let after = room.map(|r| format!(" ({r})")).unwrap_or_default();
    let mut html = format!("<b>{}</b>{}", escape_html(heading), escape_html(&after));
    let mut slack = format!("*{}*{}", escape_slack(heading), escape_slack(&after));
    let mut text = format!("{heading}{after}");
    // Teams: paragraphs (heading, section title, list, "and N more"), list items one a line.
    let mut teams = vec![format!("{}{}", escape_teams(heading), escape_teams(&after))];
    let mut google_chat = format!(
        "*{}*{}",
        escape_google_chat(heading),
        escape_google_chat(&after)
    );
    // HipChat mention names of the reviewers the shown PRs wait for.
    let mut mentions: Vec<String> = Vec::new();
    // Room for the "and N more" lines and the second heading.
    let budget = MAX_MESSAGE_CHARS - 400;
    for (title, kept, total, author_list) in [
        (None, &digest.waiting_review, digest.review_total, false),
        (
            Some("Waiting on author (changes requested)"),
            &digest.waiting_author,
            digest.author_total,
            true,
        ),
    ] {
        if total == 0 {
            continue;
        }
        if let Some(t) = title {
            html.push_str(&format!("<br><b>{t}</b>"));
            slack.push_str(&format!("\n*{t}*"));
            text.push_str(&format!("\n{t}:"));
            teams.push(format!("**{t}**"));
            google_chat.push_str(&format!("\n*{t}*"));
        }
        let mut shown = 0;
        let mut teams_items = Vec::new();
        // Characters used so far in each format (html, slack, text, teams, google chat): every
        // format must keep within the budget, not only HipChat's (Slack's mentions and Teams'
        // escapes make those lines longer).
        let chars = |s: &str| s.chars().count();
        let mut used = [
            chars(&html),
            chars(&slack),
            chars(&text),
            teams.iter().map(|p| chars(p) + 2).sum(),
            chars(&google_chat),
        ];
        for pr in kept.iter() {
            let l = line(pr, author_list);
            let sizes =
                [&l.html, &l.slack, &l.text, &l.teams, &l.google_chat].map(|f| chars(f) + 8);
            if used.iter().zip(&sizes).any(|(u, n)| u + n > budget) {
                break;
            }
            for (u, n) in used.iter_mut().zip(sizes) {
                *u += n;
            }
            html.push_str(&format!("<br>• {}", l.html));
            slack.push_str(&format!("\n• {}", l.slack));
            text.push_str(&format!("\n  - {}", l.text));
            teams_items.push(format!("- {}", l.teams));
            google_chat.push_str(&format!("\n• {}", l.google_chat));
            shown += 1;
            if settings.hipchat_mention_ping && !author_list {
                // Only the people the line names, and at most `MAX_MENTIONS` in all.
                let shown = pr.waiting_for.iter().take(NAMES_SHOWN);
                for name in shown.filter_map(|r| r.hipchat.as_deref()) {
                    let name = name.trim_start_matches('@');
                    if mentions.len() < MAX_MENTIONS && !mentions.iter().any(|m| m == name) {
                        mentions.push(name.to_owned());
                    }
                }
            }
        }
        if !teams_items.is_empty() {
            teams.push(teams_items.join("\n"));
        }
        if total > shown {
            let more = format!("and {} more", total - shown);
            html.push_str(&format!("<br>{more}"));
            slack.push_str(&format!("\n{more}"));
            text.push_str(&format!("\n  {more}"));
            teams.push(more.clone());
            google_chat.push_str(&format!("\n{more}"));
        }
    }
    Message {
        color,
        notify: !digest.is_empty(),
        html,
        slack,
        text,
        teams: teams.join("\n\n"),
        google_chat,
        mentions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::local;
    use crate::domain::RepositoryKey;
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
            build_state: build.map(str::to_owned),
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
        };
        let m = render("backend", &digest, &SweepSettings::default(), now);
        assert_eq!(m.color, Color::Yellow);
        assert_eq!(
            m.html,
            "<b>2 pull requests waiting for review, 1 waiting on their author</b> (backend)\
             <br>• <a href=\"https://bitbucket.org/acme/api/pull-requests/1\">Change &lt;1&gt; &amp; more</a> (acme/api #1) by Ann · 1/2 approvals (Bob) · 2d 2h old · <b>build FAILED</b>\
             <br>• <a href=\"https://bitbucket.org/acme/api/pull-requests/2\">Change &lt;2&gt; &amp; more</a> (acme/api #2) by Ann · 0/2 approvals · 5h old\
             <br><b>Waiting on author (changes requested)</b>\
             <br>• <a href=\"https://bitbucket.org/acme/api/pull-requests/3\">Change &lt;3&gt; &amp; more</a> (acme/api #3) by Ann · 0/2 approvals · changes requested by Carol · 1d 6h old · <b>build running</b>"
        );
        assert_eq!(
            m.text,
            "2 pull requests waiting for review, 1 waiting on their author (backend)\n  \
             - Change <1> & more (acme/api #1) by Ann · 1/2 approvals (Bob) · 2d 2h old · build FAILED <https://bitbucket.org/acme/api/pull-requests/1>\n  \
             - Change <2> & more (acme/api #2) by Ann · 0/2 approvals · 5h old <https://bitbucket.org/acme/api/pull-requests/2>\n\
             Waiting on author (changes requested):\n  \
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
        };
        let m = render("r", &digest, &SweepSettings::default(), now);
        // Each once, in order; nobody from the waiting-on-author list (the author acts next).
        assert_eq!(m.mentions, ["bob", "carl"]);
        let off = SweepSettings {
            hipchat_mention_ping: false,
            ..SweepSettings::default()
        };
        assert!(render("r", &digest, &off, now).mentions.is_empty());
    }

    /// A default-reviewer group of 300 on one PR: its line names a handful and counts the
    /// others, every PR of the digest is listed in every format, and HipChat's ping names only
    /// the people the lines show (at most `MAX_MENTIONS`).
    #[test]
    fn a_crowd_of_reviewers_never_hides_the_other_prs() {
        use crate::domain::Reviewer;
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
        let person = |i: usize| Reviewer {
            name: format!("Reviewer {i} of the platform team's default reviewer group"),
            hipchat: Some(format!("reviewer{i}")),
            slack: Some(format!("U{i:08}")),
            ..Reviewer::default()
        };
        let mut digest = RoomDigest::default();
        let mut crowded = pr(1, now - chrono::Duration::hours(30), &[], &[], None);
        crowded.waiting_for = (0..300).map(person).collect();
        crowded.approved_by = (300..340).map(|i| person(i).name).collect();
        crowded.approvals = 40;
        crowded.required_approvals = 50;
        crowded.title = "Bump the platform".into();
        digest.waiting_review.push(crowded);
        for n in 2..=20 {
            let mut p = pr(n, now - chrono::Duration::hours(2), &[], &[], None);
            p.waiting_for = vec![person(1000 + n as usize)];
            p.title = format!("Change {n}");
            digest.waiting_review.push(p);
        }
        digest.review_total = 20;
        let m = render("r", &digest, &SweepSettings::default(), now);
        for (format, text, bullet) in [
            ("html", &m.html, "<br>• "),
            ("slack", &m.slack, "\n• "),
            ("text", &m.text, "\n  - "),
            ("teams", &m.teams, "\n- "),
            ("google chat", &m.google_chat, "\n• "),
        ] {
            assert!(
                text.chars().count() <= MAX_MESSAGE_CHARS,
                "{format}: {}",
                text.chars().count()
            );
            assert!(!text.contains("more"), "{format}: every PR is listed");
            assert_eq!(text.matches(bullet).count(), 20, "{format}: {text}");
            assert!(text.contains("and 295 others"), "{format}: {text}");
            assert!(
                text.contains("and 35 others"),
                "{format}: approvals: {text}"
            );
        }
        assert!(
            m.html.contains(
                " · waiting for @reviewer0, @reviewer1, @reviewer2, @reviewer3, @reviewer4 \
                 and 295 others"
            ),
            "{}",
            m.html
        );
        assert!(
            m.slack.contains(
                " · waiting for <@U00000000>, <@U00000001>, <@U00000002>, <@U00000003>, \
                 <@U00000004> and 295 others"
            ),
            "{}",
            m.slack
        );
        let mut expected: Vec<String> = (0..5).map(|i| format!("reviewer{i}")).collect();
        expected.extend((2..=20).map(|n| format!("reviewer{}", 1000 + n)));
        assert_eq!(m.mentions, expected[..MAX_MENTIONS.min(expected.len())]);
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
        let m = render("r", &over, &SweepSettings::default(), now);
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
        let m = render("r", &digest, &SweepSettings::default(), now);
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
