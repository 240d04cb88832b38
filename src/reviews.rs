//! The `/reviews` chat command: what a person can review now, their own PRs, the room's list,
//! and snoozes. Parsing is pure; `execute` reads the review queue (and for snoozes writes) and
//! returns a chat document that the HipChat and Slack endpoints format for their chat.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Room, Settings, Sink, UserMapping};
use crate::domain::calendar::Calendar;
use crate::domain::routing::Routing;
use crate::domain::{PullRequestView, Timestamp, Turn};
use crate::notify::digest;
use crate::notify::doc::{Color, Doc};
use crate::review_queue::{self, Scope};
use crate::store::snoozes::SnoozeOutcome;
use crate::store::{self, Db};

/// A pull request as a person named it: a repository name (`workspace/slug` or `PROJECT/slug`,
/// any case) and a PR number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrRef {
    /// The repository's name as typed (looked up with `find_by_name`).
    pub repository: String,
    /// The PR's number, 1 or more.
    pub number: i64,
}

/// A parsed `/reviews` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/reviews`: the open PRs in this room on which the asker is an owed reviewer, then
    /// ("Your turn: N") the asker's own whose turn is theirs (author's turn or ready to merge).
    Reviews,
    /// `/reviews mine`: the asker's own open PRs.
    Mine,
    /// `/reviews all`: everything waiting for review in this room.
    All,
    /// `/reviews snooze <PR> [4h | 3d | 3 days | 1w]`: hide a PR from the asker's list and the
    /// room's digest until then (at most `max_snooze_days`), or until it changes.
    Snooze {
        /// The PR to hide.
        target: PrRef,
        /// For how long (default `default_snooze`).
        duration: Duration,
    },
    /// `/reviews unsnooze <PR>`: show it again.
    Unsnooze {
        /// The PR to show again.
        target: PrRef,
    },
    /// `/reviews dm on|off`: direct messages on or off for the asker.
    Dm {
        /// On or off.
        on: bool,
    },
    /// `/reviews remind 09:30[,14:00]` (or `off`): when the asker's queue is sent to them.
    Remind {
        /// Local times of day, earliest first; empty: no scheduled reminder.
        times: Vec<chrono::NaiveTime>,
    },
    /// `/reviews away until 2027-01-04` (or `/reviews back`): no personal messages until then.
    Away {
        /// The first day they are back (`None`: back now).
        until: Option<chrono::NaiveDate>,
    },
    /// `/reviews mute <PR>`: no direct messages about it.
    Mute {
        /// The PR.
        target: PrRef,
    },
    /// `/reviews unmute <PR>`.
    Unmute {
        /// The PR.
        target: PrRef,
    },
    /// `help`, or anything not understood (with what was wrong).
    Help {
        /// What was not understood; `None` for a plain `help`.
        problem: Option<String>,
    },
}

/// A pull request as people paste it: a Cloud link
/// (`https://bitbucket.org/ws/slug/pull-requests/12[/...]`), a Data Center link
/// (`https://host/projects/PRJ/repos/slug/pull-requests/12[/...]`, or
/// `.../users/alice/repos/slug/...` for a personal project `~alice`), or `ws/slug#12`.
pub fn parse_ref(text: &str) -> Option<PrRef> {
    let text = text.trim().trim_matches(|c| c == '<' || c == '>');
    if let Some((repo, number)) = text.split_once('#') {
        let number = number.parse().ok().filter(|n: &i64| *n > 0)?;
        let repo = repo.trim_matches('/');
        return (repo.split('/').count() == 2 && !repo.contains(' ')).then(|| PrRef {
            repository: repo.to_owned(),
            number,
        });
    }
    let path = text.split_once("://").map(|(_, rest)| rest)?;
    let parts: Vec<&str> = path.split('/').skip(1).collect(); // the host
                                                              // Data Center: .../projects/PRJ/repos/slug/pull-requests/12 or .../users/u/repos/slug/...
    if let Some(at) = parts.windows(5).position(|w| {
        matches!(w[0], "projects" | "users") && w[2] == "repos" && w[4] == "pull-requests"
    }) {
        let project = match parts[at] {
            "users" => format!("~{}", parts[at + 1]),
            _ => parts[at + 1].to_owned(),
        };
        let number = parts.get(at + 5)?.parse().ok().filter(|n: &i64| *n > 0)?;
        return Some(PrRef {
            repository: format!("{project}/{}", parts[at + 3]),
            number,
        });
    }
    let mut parts = parts.into_iter();
    let workspace = parts.next()?;
    let slug = parts.next()?;
    if parts.next()? != "pull-requests" {
        return None;
    }
    let number = parts.next()?.parse().ok().filter(|n: &i64| *n > 0)?;
    Some(PrRef {
        repository: format!("{workspace}/{slug}"),
        number,
    })
}

/// A duration as people type it: a whole number and a unit, with or without a space, or
/// several such parts: `30m`, `4h`, `72h`, `3d`, `3 days`, `1 week`, `1d 12h`. Units: `m`,
/// `min`, `minute(s)`; `h`, `hr`, `hour(s)`; `d`, `day(s)`; `w`, `wk`, `week(s)`. At most a
/// year (policy, `max_snooze_days`, is the caller's).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim().to_ascii_lowercase();
    let mut rest = text.as_str();
    let mut total: u64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok().filter(|n| *n > 0)?;
        rest = rest[digits..].trim_start();
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let seconds = match &rest[..letters] {
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "wk" | "wks" | "week" | "weeks" => 7 * 86_400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(seconds)?)?;
        rest = rest[letters..].trim_start_matches([' ', ',']);
    }
    (total <= 366 * 86_400).then(|| Duration::from_secs(total))
}

/// A duration in words: `7 days`, `36 hours`, `90 minutes` (the largest whole unit).
fn spoken(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (n, unit) = if secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else {
        (secs.div_ceil(60), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The words after `/reviews` (HipChat sends the whole line, Slack only the rest).
pub fn parse(text: &str, default_snooze: Duration) -> Command {
    let text = text.trim();
    let text = text.strip_prefix("/reviews").unwrap_or(text).trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [] => Command::Reviews,
        ["mine"] => Command::Mine,
        ["all"] => Command::All,
        ["help"] => Command::Help { problem: None },
        ["dm", "on"] => Command::Dm { on: true },
        ["dm", "off"] => Command::Dm { on: false },
        ["dm", ..] => Command::Help {
            problem: Some("`/reviews dm` takes on or off".into()),
        },
        ["remind", "off"] => Command::Remind { times: Vec::new() },
        ["remind", rest @ ..] if !rest.is_empty() => {
            let mut times = Vec::new();
            for word in rest.join(",").split(',').filter(|w| !w.trim().is_empty()) {
                match crate::config::parse_clock_time(word) {
                    Ok(time) => times.push(time),
                    Err(problem) => {
                        return Command::Help {
                            problem: Some(problem),
                        }
                    }
                }
            }
            times.sort();
            times.dedup();
            Command::Remind { times }
        }
        ["away", "until", date] => match crate::config::parse_date(date) {
            Ok(until) => Command::Away { until: Some(until) },
            Err(problem) => Command::Help {
                problem: Some(problem),
            },
        },
        ["away", "off"] | ["back"] => Command::Away { until: None },
        ["away", ..] => Command::Help {
            problem: Some("`/reviews away` takes until YYYY-MM-DD (or off)".into()),
        },
        [verb @ ("mute" | "unmute"), target] => match parse_ref(target) {
            Some(target) if *verb == "mute" => Command::Mute { target },
            Some(target) => Command::Unmute { target },
            None => Command::Help {
                problem: Some(format!(
                    "`{target}` is not a pull request (a link, or workspace/repo#number)"
                )),
            },
        },
        ["unsnooze", target] => match parse_ref(target) {
            Some(target) => Command::Unsnooze { target },
            None => Command::Help {
                problem: Some(format!(
                    "`{target}` is not a pull request (a link, or workspace/repo#number)"
                )),
            },
        },
        ["snooze", target, rest @ ..] => {
            let Some(target) = parse_ref(target) else {
                return Command::Help {
                    problem: Some(format!(
                        "`{target}` is not a pull request (a link, or workspace/repo#number)"
                    )),
                };
            };
            let duration = match rest.join(" ") {
                d if d.is_empty() => default_snooze,
                d => match parse_duration(&d) {
                    Some(d) => d,
                    None => {
                        return Command::Help {
                            problem: Some(format!(
                                "`{d}` is not a duration (such as 4h, 3d, 3 days or 1w)"
                            )),
                        }
                    }
                },
            };
            Command::Snooze { target, duration }
        }
        _ => Command::Help {
            problem: Some(format!("`{text}` is not a /reviews command")),
        },
    }
}

/// Who asked, as the chat knows them.
#[derive(Debug, Clone)]
pub enum Asker {
    HipChat { mention_name: String, name: String },
    Slack { user_id: String, user_name: String },
}

impl Asker {
    fn chat_names(&self) -> Vec<&str> {
        match self {
            Asker::HipChat { mention_name, .. } => vec![mention_name.trim_start_matches('@')],
            Asker::Slack { user_id, user_name } => vec![user_id.as_str(), user_name.as_str()],
        }
    }

    fn hint(&self) -> String {
        match self {
            Asker::HipChat { mention_name, .. } => format!(
                "Tip: to see your own list, ask your admin to add [[users]] bitbucket = \"<your Bitbucket nickname or account id>\", hipchat = \"{}\"",
                mention_name.trim_start_matches('@')
            ),
            Asker::Slack { user_id, .. } => format!(
                "Tip: to see your own list, ask your admin to add [[users]] bitbucket = \"<your Bitbucket nickname or account id>\", slack = \"{user_id}\""
            ),
        }
    }
}

/// The Bitbucket account behind a chat user: a configured mapping, else a Bitbucket nickname or
/// username equal to the chat name. Returns the `user_key`.
pub async fn resolve_user(
    db: &Db,
    users: &[UserMapping],
    asker: &Asker,
) -> anyhow::Result<Option<String>> {
    let names = asker.chat_names();
    let mapped = users.iter().find(|u| {
        let chat = match asker {
            Asker::HipChat { .. } => u.hipchat.as_deref(),
            Asker::Slack { .. } => u.slack.as_deref(),
        };
        chat.is_some_and(|c| {
            names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(c.trim_start_matches('@')))
        })
    });
    let candidates: Vec<&str> = match mapped {
        Some(u) => vec![u.bitbucket.as_str()],
        None => names,
    };
    for candidate in candidates {
        let key = store::users::find(db, candidate).await?;
        if key.is_some() {
            return Ok(key);
        }
    }
    Ok(None)
}

/// The configured room a chat room is: same name, or (HipChat) the room named in its URL.
pub fn find_room<'a>(rooms: &'a [Room], ids: &[&str]) -> Option<&'a Room> {
    rooms.iter().find(|room| {
        ids.iter().any(|id| {
            !id.is_empty()
                && (room.name.eq_ignore_ascii_case(id)
                    || matches!(&room.sink, Sink::HipChat(url) | Sink::HipChatBearer { url, .. } if hipchat_room_segment(url).is_some_and(|s| s.eq_ignore_ascii_case(id))))
        })
    })
}

fn hipchat_room_segment(url: &secrecy::SecretString) -> Option<String> {
    use secrecy::ExposeSecret;
    let parsed = reqwest::Url::parse(url.expose_secret()).ok()?;
    let mut segments = parsed.path_segments()?;
    while let Some(segment) = segments.next() {
        if segment == "room" {
            return segments.next().map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            });
        }
    }
    None
}

/// The snoozes in force on open PRs routed to `room`, the soonest to end first.
pub async fn snoozes_in_room(
    db: &Db,
    routing: &Routing,
    room: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<store::snoozes::CurrentSnooze>> {
    let all = store::snoozes::current(db, &Timestamp::from_datetime(now)).await?;
    Ok(all
        .into_iter()
        .filter(|s| {
            let flavour =
                crate::domain::RepositoryKey::from_stored(s.repository_key.clone()).flavour();
            routing
                .route(flavour, &s.full_name)
                .is_some_and(|route| route.rooms.iter().any(|r| r == room))
        })
        .collect())
}

/// Most snoozes a `/reviews` answer names one by one.
const SNOOZES_SHOWN: usize = 10;

/// `Snoozed, not listed: acme/api#3 by Carol until Tue 24 Nov 12:00 CET`, one line each (at
/// most `SNOOZES_SHOWN`, then how many more), times in the calendar's zone.
fn snooze_lines(snoozes: &[store::snoozes::CurrentSnooze], calendar: &Calendar) -> Vec<String> {
    let mut lines: Vec<String> = snoozes
        .iter()
        .take(SNOOZES_SHOWN)
        .map(|s| {
            let until = Timestamp::parse(&s.until)
                .map(|t| calendar.show(t.to_datetime()))
                .unwrap_or_else(|_| s.until.clone());
            format!(
                "Snoozed, not listed: {}#{} by {} until {until}",
                s.full_name, s.number, s.snoozed_by
            )
        })
        .collect();
    if snoozes.len() > SNOOZES_SHOWN {
        lines.push(format!(
            "and {} more snoozed",
            snoozes.len() - SNOOZES_SHOWN
        ));
    }
    lines
}

/// Whether `me` (a `user_key`) owes a review on `view`: its turn is its reviewers' and they
/// are among the owed.
fn owes(view: &PullRequestView, me: &str) -> bool {
    matches!(&view.turn, Some(Turn::Reviewers { owed }) if owed.iter().any(|k| k.as_str() == me))
}

/// Whether `view`'s route lists it in `room`.
fn routed_to(routing: &Routing, view: &PullRequestView, room: &str) -> bool {
    routing
        .route(view.key.flavour(), &view.repository)
        .is_some_and(|route| route.rooms.iter().any(|r| r == room))
}

/// The answer when the asker's Bitbucket account is needed but unknown.
fn unknown_user(asker: &Asker, what: &str) -> Doc {
    append(
        say(
            Color::Gray,
            &format!("I don't know which Bitbucket account is yours{what}."),
        ),
        &asker.hint(),
    )
}

fn say(color: Color, text: &str) -> Doc {
    Doc::lines(color, [text])
}

fn append(mut message: Doc, line: &str) -> Doc {
    message.push_line(line);
    message
}

/// The answer to `/reviews help` (and, after a line saying what was wrong, to anything not
/// understood).
pub const HELP: &str = "/reviews: the pull requests in this room waiting for your review, then yours whose turn is yours (changes requested, a failed build, open tasks, a draft, or ready to merge)\n\
/reviews mine: your own open pull requests\n\
/reviews all: everything waiting for review in this room\n\
/reviews snooze <PR link | workspace/repo#number> [4h | 3d | 3 days | 1w]: hide someone else's pull request from your list and the room's digest (default 1 day) until then or until it changes\n\
/reviews unsnooze <PR link | workspace/repo#number>\n\
/reviews dm on|off: your personal reminders in a direct message, or none\n\
/reviews remind 09:30[,14:00] | off: when your queue is sent to you (your time zone, your working days)\n\
/reviews away until 2027-01-04 | off: no personal messages until then\n\
/reviews mute | unmute <PR link | workspace/repo#number>: no direct messages about it\n\
/reviews help: this text";

/// Carries out a command for `asker` in the chat room known by `room_ids`.
pub async fn execute(
    db: &Db,
    settings: &Settings,
    routing: &Routing,
    command: &Command,
    asker: &Asker,
    room_ids: &[&str],
    now: DateTime<Utc>,
) -> anyhow::Result<Doc> {
    let me = resolve_user(db, &settings.commands.users, asker).await?;
    let room = find_room(&settings.notify.rooms, room_ids);
    let sweep_settings = &settings.sweep;
    match command {
        Command::Help { problem } => {
            let text = match problem {
                Some(p) => format!("Sorry: {p}.\n{HELP}"),
                None => HELP.to_owned(),
            };
            let mut lines = text.lines();
            let first = lines.next().unwrap_or_default();
            Ok(lines.fold(say(Color::Gray, first), append))
        }
        Command::Reviews | Command::All => {
            let Some(room) = room else {
                return Ok(say(
                    Color::Gray,
                    "This room has no repositories routed to it: there is nothing to list here.",
                ));
            };
            let personal = matches!(command, Command::Reviews) && me.is_some();
            let scope = Scope {
                room: Some(room.name.clone()),
                asker: if personal { me.clone() } else { None },
                reminders: false,
            };
            let mut digests =
                review_queue::select(db, routing, &settings.commands.users, now, &scope).await?;
            let digest = digests.remove(&room.name).unwrap_or_default();
            let mut message = match me.as_deref().filter(|_| personal) {
                Some(me) => {
                    // Only the PRs on which the asker owes a review (issue 23), then their own
                    // whose turn is theirs.
                    let owed: Vec<_> = digest
                        .waiting_review
                        .into_iter()
                        .filter(|v| owes(v, me))
                        .collect();
                    let mine =
                        review_queue::authored(db, routing, &settings.commands.users, me).await?;
                    let mut mine: Vec<_> = mine
                        .waiting_author
                        .into_iter()
                        .chain(mine.ready_to_merge)
                        .filter(|v| routed_to(routing, v, &room.name))
                        .collect();
                    mine.sort_by_key(|v| v.created_on);
                    digest::render_personal(&room.name, &owed, &mine, sweep_settings, now)
                }
                None if digest.is_empty() => {
                    say(Color::Green, "Nothing is waiting for review here.")
                }
                None => digest::render(&room.name, &digest, sweep_settings, now),
            };
            message.notify = false;
            // What this list leaves out for a snooze: in the room's list anyone's, in a
            // person's list their own.
            let hidden = snoozes_in_room(db, routing, &room.name, now).await?;
            let hidden: Vec<_> = hidden
                .into_iter()
                .filter(|s| !personal || me.as_deref() == Some(s.user_key.as_str()))
                .collect();
            for line in snooze_lines(&hidden, &sweep_settings.calendar) {
                message = append(message, &line);
            }
            if matches!(command, Command::Reviews) && me.is_none() {
                message = append(message, &asker.hint());
            }
            Ok(message)
        }
        Command::Mine => {
            let Some(me) = me else {
                return Ok(unknown_user(asker, ""));
            };
            let digest = review_queue::authored(db, routing, &settings.commands.users, &me).await?;
            if digest.is_empty() {
                return Ok(say(Color::Gray, "You have no open pull requests."));
            }
            let open = digest.review_total + digest.author_total + digest.merge_total;
            let heading = format!(
                "Your {} open pull request{}",
                open,
                if open == 1 { "" } else { "s" }
            );
            let mut message = digest::render_list(&heading, None, &digest, sweep_settings, now);
            message.notify = false;
            Ok(message)
        }
        Command::Snooze { target, duration } => {
            let Some(me) = me else {
                return Ok(unknown_user(asker, ", so I cannot snooze for you"));
            };
            let most = settings.commands.max_snooze;
            if *duration > most {
                return Ok(say(
                    Color::Gray,
                    &format!(
                        "A snooze lasts at most {} here; {} is longer. Nothing was snoozed.",
                        spoken(most),
                        spoken(*duration)
                    ),
                ));
            }
            let until = now + chrono::Duration::from_std(*duration).unwrap_or_default();
            let outcome = match store::repositories::find_by_name(db, &target.repository).await? {
                Some(key) => {
                    store::snoozes::snooze(
                        db,
                        &me,
                        &key,
                        target.number,
                        &Timestamp::from_datetime(until),
                        &Timestamp::from_datetime(now),
                    )
                    .await?
                }
                None => SnoozeOutcome::Unknown,
            };
            let pr = format!("{}#{}", target.repository, target.number);
            Ok(say(
                Color::Gray,
                &match outcome {
                    SnoozeOutcome::Unknown => format!("I don't know {pr}."),
                    SnoozeOutcome::OwnPullRequest => format!(
                        "{pr} is your own pull request: you cannot snooze it for the room. Mark \
                         it as a draft while it is not ready for review."
                    ),
                    SnoozeOutcome::Snoozed => format!(
                        "Snoozed {pr} until {}, or until it gets a new commit, a new reviewer or loses an approval.",
                        sweep_settings.calendar.show(until)
                    ),
                },
            ))
        }
        Command::Dm { .. }
        | Command::Remind { .. }
        | Command::Away { .. }
        | Command::Mute { .. }
        | Command::Unmute { .. } => personal(db, settings, command, asker, now).await,
        Command::Unsnooze { target } => {
            let Some(me) = me else {
                return Ok(unknown_user(asker, ""));
            };
            let removed = match store::repositories::find_by_name(db, &target.repository).await? {
                Some(key) => store::snoozes::unsnooze(db, &me, &key, target.number).await?,
                None => false,
            };
            Ok(say(
                Color::Gray,
                &if !removed {
                    format!("{}#{} was not snoozed.", target.repository, target.number)
                } else {
                    format!(
                        "{}#{} is back in your list.",
                        target.repository, target.number
                    )
                },
            ))
        }
    }
}

/// The asker's `[[users]]` entry: the one whose chat name is theirs.
fn mapped<'a>(users: &'a [UserMapping], asker: &Asker) -> Option<&'a UserMapping> {
    let names = asker.chat_names();
    users.iter().find(|u| {
        let chat = match asker {
            Asker::HipChat { .. } => u.hipchat.as_deref(),
            Asker::Slack { .. } => u.slack.as_deref().or(u.mattermost.as_deref()),
        };
        chat.is_some_and(|c| {
            names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(c.trim_start_matches('@')))
        })
    })
}

/// The direct-message commands (`dm`, `remind`, `away`, `mute`, `unmute`), stored for the
/// asker's `[[users]]` entry.
async fn personal(
    db: &Db,
    settings: &Settings,
    command: &Command,
    asker: &Asker,
    now: DateTime<Utc>,
) -> anyhow::Result<Doc> {
    use crate::store::direct::{self, Preference};
    let Some(user) = mapped(&settings.commands.users, asker) else {
        return Ok(append(
            say(
                Color::Gray,
                "Personal reminders need a [[users]] entry with your chat name; I have none for you.",
            ),
            &asker.hint(),
        ));
    };
    let person = user.bitbucket.as_str();
    let stamp = Timestamp::from_datetime(now);
    let zones = std::collections::HashMap::new();
    let text = match command {
        Command::Dm { on } => {
            let word = if *on { "on" } else { "off" };
            direct::set(db, person, Preference::Dm, word, &stamp).await?;
            let prefs = direct::preferences(db).await?.remove(person);
            let chat = crate::remind::person(user, prefs.as_ref(), settings, &zones).chat;
            match (on, chat) {
                (false, _) => "Direct messages are off for you: no personal reminders.".to_owned(),
                (true, Some(chat)) => format!(
                    "Direct messages are on for you: they come through {}.",
                    chat.as_str()
                ),
                (true, None) => "Direct messages are on for you, but no chat here can reach you \
                     (ask your admin to add your Slack id or e-mail to [[users]])."
                    .to_owned(),
            }
        }
        Command::Remind { times } => {
            let list: Vec<String> = times
                .iter()
                .map(|t| t.format("%H:%M").to_string())
                .collect();
            direct::set(db, person, Preference::RemindAt, &list.join(","), &stamp).await?;
            if list.is_empty() {
                "No scheduled reminder any more.".to_owned()
            } else {
                format!(
                    "Your queue will be sent to you at {} on your working days.",
                    list.join(", ")
                )
            }
        }
        Command::Away { until } => {
            let prefs = direct::preferences(db).await?.remove(person);
            let tz = crate::remind::person(user, prefs.as_ref(), settings, &zones)
                .schedule
                .tz;
            let today = now.with_timezone(&tz).date_naive();
            match until {
                Some(date) if *date <= today => format!(
                    "{} is not after today ({}): nothing changed.",
                    date.format("%Y-%m-%d"),
                    today.format("%Y-%m-%d")
                ),
                Some(date) => {
                    let text = date.format("%Y-%m-%d").to_string();
                    direct::set(db, person, Preference::AwayUntil, &text, &stamp).await?;
                    format!("Away until {text}: no personal messages before then.")
                }
                None => {
                    direct::set(db, person, Preference::AwayUntil, "", &stamp).await?;
                    "Welcome back: personal messages are on again.".to_owned()
                }
            }
        }
        Command::Mute { target } | Command::Unmute { target } => {
            let pr = format!("{}#{}", target.repository, target.number);
            match store::repositories::find_by_name(db, &target.repository).await? {
                None => format!("I don't know {pr}."),
                Some(key) if matches!(command, Command::Mute { .. }) => {
                    direct::mute(db, person, &key, target.number, &stamp).await?;
                    format!("Muted {pr}: no direct messages about it.")
                }
                Some(key) => {
                    if direct::unmute(db, person, &key, target.number).await? {
                        format!("Unmuted {pr}.")
                    } else {
                        format!("{pr} was not muted.")
                    }
                }
            }
        }
        _ => return Ok(say(Color::Gray, HELP)),
    };
    Ok(say(Color::Gray, &text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs() {
        let want = PrRef {
            repository: "acme/api".into(),
            number: 12,
        };
        assert_eq!(
            parse_ref("https://bitbucket.org/acme/api/pull-requests/12"),
            Some(want.clone())
        );
        assert_eq!(
            parse_ref("<https://bitbucket.org/acme/api/pull-requests/12/diff>"),
            Some(want.clone())
        );
        assert_eq!(parse_ref("acme/api#12"), Some(want));
        assert_eq!(
            parse_ref("https://bb.example:7990/projects/PRJ/repos/api/pull-requests/7/overview"),
            Some(PrRef {
                repository: "PRJ/api".into(),
                number: 7
            })
        );
        assert_eq!(
            parse_ref("https://bb.example/users/alice/repos/dots/pull-requests/2"),
            Some(PrRef {
                repository: "~alice/dots".into(),
                number: 2
            })
        );
        assert_eq!(
            parse_ref("https://bb.example/projects/PRJ/repos/api/browse"),
            None
        );
        assert_eq!(parse_ref("acme#12"), None);
        assert_eq!(parse_ref("acme/api#x"), None);
        assert_eq!(parse_ref("https://bitbucket.org/acme/api/commits/12"), None);
    }

    #[test]
    fn commands() {
        let day = Duration::from_secs(86_400);
        assert_eq!(parse("/reviews", day), Command::Reviews);
        assert_eq!(parse("", day), Command::Reviews);
        assert_eq!(parse("/reviews mine", day), Command::Mine);
        assert_eq!(parse("all", day), Command::All);
        assert_eq!(parse("help", day), Command::Help { problem: None });
        let target = PrRef {
            repository: "acme/api".into(),
            number: 3,
        };
        assert_eq!(
            parse("snooze acme/api#3", day),
            Command::Snooze {
                target: target.clone(),
                duration: day
            }
        );
        assert_eq!(
            parse("/reviews snooze acme/api#3 4h", day),
            Command::Snooze {
                target: target.clone(),
                duration: Duration::from_secs(4 * 3600)
            }
        );
        assert_eq!(
            parse("unsnooze acme/api#3", day),
            Command::Unsnooze { target }
        );
        assert!(matches!(
            parse("snooze acme/api#3 forever", day),
            Command::Help { problem: Some(p) } if p == "`forever` is not a duration (such as 4h, 3d, 3 days or 1w)"
        ));
        // Two words are one duration, not a wrong command.
        assert_eq!(
            parse("/reviews snooze acme/api#3 3 days", day),
            Command::Snooze {
                target: PrRef {
                    repository: "acme/api".into(),
                    number: 3
                },
                duration: Duration::from_secs(3 * 86_400)
            }
        );
        assert!(matches!(
            parse("snooze acme/api#3 3 dayz", day),
            Command::Help { problem: Some(p) } if p.contains("is not a duration")
        ));
        assert!(matches!(
            parse("snooze nothing", day),
            Command::Help { problem: Some(_) }
        ));
        assert!(
            matches!(parse("dance", day), Command::Help { problem: Some(p) } if p.contains("dance"))
        );
    }

    #[test]
    fn direct_message_commands() {
        let day = Duration::from_secs(86_400);
        assert_eq!(parse("dm off", day), Command::Dm { on: false });
        assert_eq!(parse("/reviews dm on", day), Command::Dm { on: true });
        let t = |s: &str| chrono::NaiveTime::parse_from_str(s, "%H:%M").unwrap();
        assert_eq!(
            parse("remind 14:00, 09:30", day),
            Command::Remind {
                times: vec![t("09:30"), t("14:00")]
            }
        );
        assert_eq!(parse("remind off", day), Command::Remind { times: vec![] });
        assert!(matches!(
            parse("remind 9h30", day),
            Command::Help { problem: Some(p) } if p == "`9h30` is not a time of day such as 09:30 (24-hour HH:MM)"
        ));
        assert!(matches!(
            parse("remind 25:00", day),
            Command::Help { problem: Some(p) } if p.contains("25:00")
        ));
        assert_eq!(
            parse("away until 2027-01-04", day),
            Command::Away {
                until: chrono::NaiveDate::from_ymd_opt(2027, 1, 4)
            }
        );
        assert!(matches!(
            parse("away until 4/1/2027", day),
            Command::Help { problem: Some(p) } if p == "`4/1/2027` is not a date such as 2027-01-04 (YYYY-MM-DD)"
        ));
        assert_eq!(parse("back", day), Command::Away { until: None });
        assert!(matches!(
            parse("dm maybe", day),
            Command::Help { problem: Some(_) }
        ));
        assert_eq!(
            parse("mute acme/api#3", day),
            Command::Mute {
                target: PrRef {
                    repository: "acme/api".into(),
                    number: 3
                }
            }
        );
        assert!(matches!(
            parse("mute nothing", day),
            Command::Help { problem: Some(_) }
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("0d"), None);
        assert_eq!(parse_duration("d"), None);
        // One duration, however written.
        let three_days = Some(Duration::from_secs(3 * 86_400));
        for text in [
            "3d",
            "3 days",
            "3 Days",
            "72h",
            "72 hours",
            "2d 24h",
            "2 days, 24 hours",
        ] {
            assert_eq!(parse_duration(text), three_days, "{text}");
        }
        assert_eq!(
            parse_duration("1 week"),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(parse_duration("90 min"), Some(Duration::from_secs(5400)));
        // Policy (max_snooze_days) is the caller's; a number past a year is no snooze.
        assert_eq!(
            parse_duration("100d"),
            Some(Duration::from_secs(100 * 86_400))
        );
        assert_eq!(parse_duration("400d"), None);
        for wrong in [
            "3 dayz",
            "3",
            "days",
            "3d x",
            "-3d",
            "3.5d",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(wrong), None, "{wrong}");
        }
    }
}
