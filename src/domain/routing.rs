//! Which room hears about which repository, and what it announces there. Pure: routes are
//! globs over the repository's current `workspace/slug` name, compiled once; first match wins.

use globset::{GlobBuilder, GlobMatcher};

use super::event::NotifyEvent;
use super::{Flavour, PrState};

/// Title markers of work in progress used when a route sets no `ignore_title_patterns`; matched
/// as whole words, in any case.
pub const DEFAULT_IGNORE_TITLE_PATTERNS: &[&str] = &["WIP", "[WIP]", "Draft:"];

/// Which state changes a route announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// A PR opened or became reviewable (`announce_opened`, default on).
    pub opened: bool,
    /// The set of approvers changed (`announce_approvals`, default on).
    pub approvals: bool,
    /// Someone asked for changes (`announce_changes_requested`, default on).
    pub changes_requested: bool,
    /// A build failed or recovered (`announce_builds`, default on).
    pub builds: bool,
    /// A PR was merged (`announce_merged`, default off).
    pub merged: bool,
    /// A PR was declined (`announce_declined`, default off).
    pub declined: bool,
}

impl Announce {
    /// Announces nothing (a room that only gets digests).
    pub const NOTHING: Announce = Announce {
        opened: false,
        approvals: false,
        changes_requested: false,
        builds: false,
        merged: false,
        declined: false,
    };

    /// Whether a route with these switches posts a message for `event`.
    pub fn wants(&self, event: NotifyEvent) -> bool {
        match event {
            NotifyEvent::Opened => self.opened,
            NotifyEvent::Approvals => self.approvals,
            NotifyEvent::ChangesRequested => self.changes_requested,
            NotifyEvent::BuildFailed | NotifyEvent::BuildRecovered => self.builds,
            NotifyEvent::Merged => self.merged,
            NotifyEvent::Declined => self.declined,
            // Only a room that edits its message shows it (`Routing::hears`).
            NotifyEvent::Withdrawn => false,
        }
    }
}

impl Default for Announce {
    fn default() -> Self {
        Announce {
            opened: true,
            approvals: true,
            changes_requested: true,
            builds: true,
            merged: false,
            declined: false,
        }
    }
}

/// Repositories whose PRs are announced in a room: globs over the current name, `workspace/slug`
/// on Bitbucket Cloud and `PROJECT/slug` on Data Center, in any case. A deployment that has both
/// may prefix a glob with `cloud:` or `datacenter:` to say which Bitbucket it means
/// (`datacenter:PAY/*`); an unprefixed glob matches either.
#[derive(Debug, Clone)]
pub struct Route {
    /// The globs, each optionally prefixed `cloud:` or `datacenter:`.
    pub repositories: Vec<String>,
    /// The rooms (`[[rooms]]` names) that hear about them: one, or several while a team moves
    /// from one chat to another (`rooms = ["backend", "backend-teams"]`).
    pub rooms: Vec<String>,
    /// Approvals these PRs need; `None` keeps the service-wide `required_approvals`.
    pub required_approvals: Option<u32>,
    /// `approvals_after_last_push`: an approval given before the PR's latest new commit does
    /// not count (Data Center's `lastReviewedCommit`, else the approval's date against the
    /// commit's arrival). `false` (the default) counts as Bitbucket does.
    pub approvals_after_last_push: bool,
    /// `room_reminders`: whether the rooms' scheduled digests list these PRs (`true`, the
    /// default); `false` for teams that want only personal reminders (announcements and
    /// `/reviews` are unchanged).
    pub room_reminders: bool,
    /// Which state changes are posted to the room.
    pub announce: Announce,
    /// Titles containing one of these (case-insensitive) announce nothing, like drafts.
    pub ignore_title_patterns: Vec<String>,
}

/// The first route whose globs match a repository decides its room and policy.
#[derive(Debug)]
pub struct Routing {
    routes: Vec<CompiledRoute>,
    default_required: u32,
    /// Rooms that keep one message per PR and edit it (`with_final_edits`).
    final_edits: std::collections::BTreeSet<String>,
}

/// A `Route` ready for matching: globs compiled, the required approvals settled, patterns
/// lower-cased.
#[derive(Debug)]
pub struct CompiledRoute {
    /// Each glob, with the Bitbucket it is limited to, if any.
    matchers: Vec<(Option<Flavour>, GlobMatcher)>,
    /// The rooms that hear about matching repositories (at least one).
    pub rooms: Vec<String>,
    /// Approvals a PR needs: the route's own setting, else the service default.
    pub required_approvals: u32,
    /// The route's own setting, if it has one (else the service default applies).
    pub required_override: Option<u32>,
    /// See `Route::approvals_after_last_push`.
    pub approvals_after_last_push: bool,
    /// See `Route::room_reminders`.
    pub room_reminders: bool,
    /// Which state changes are posted to the room.
    pub announce: Announce,
    ignore_title_patterns: Vec<String>,
}

impl CompiledRoute {
    /// A title that marks work in progress: one of the patterns as a whole word, any case
    /// ("WIP: parser" and "[WIP] parser" match, "Wipe caches" does not).
    pub fn ignores_title(&self, title: &str) -> bool {
        let title = title.to_lowercase();
        self.ignore_title_patterns
            .iter()
            .any(|p| contains_word(&title, p))
    }

    /// The one `reviewable` rule: an open PR that is neither a draft nor marked work in progress
    /// by its title. Only reviewable PRs are announced, listed in digests and in `/reviews`.
    pub fn reviewable(&self, state: PrState, title: &str, draft: bool) -> bool {
        state == PrState::Open && !draft && !self.ignores_title(title)
    }
}

/// `cloud:acme/*` → (Cloud, `acme/*`); an unprefixed glob is for either Bitbucket.
fn split_flavour(pattern: &str) -> (Option<Flavour>, &str) {
    if let Some(glob) = pattern.strip_prefix("cloud:") {
        (Some(Flavour::Cloud), glob)
    } else if let Some(glob) = pattern.strip_prefix("datacenter:") {
        (Some(Flavour::DataCenter), glob)
    } else {
        (None, pattern)
    }
}

fn contains_word(haystack: &str, word: &str) -> bool {
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    haystack.match_indices(word).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + word.len()..].chars().next();
        // Only a pattern's alphanumeric edges need a boundary: "[wip]" is delimited already.
        let starts_alnum = word.chars().next().is_some_and(char::is_alphanumeric);
        let ends_alnum = word.chars().next_back().is_some_and(char::is_alphanumeric);
        !((starts_alnum && is_word(before)) || (ends_alnum && is_word(after)))
    })
}

impl Routing {
    /// Compiles `routes` in order; `default_required` applies to routes that set no number.
    /// Fails on a glob `globset` cannot read.
    pub fn new(routes: &[Route], default_required: u32) -> anyhow::Result<Routing> {
        let mut compiled = Vec::with_capacity(routes.len());
        for route in routes {
            let mut matchers = Vec::new();
            for pattern in &route.repositories {
                let (flavour, glob) = split_flavour(pattern);
                let glob = GlobBuilder::new(glob)
                    .case_insensitive(true)
                    .literal_separator(false)
                    .build()?;
                matchers.push((flavour, glob.compile_matcher()));
            }
            compiled.push(CompiledRoute {
                matchers,
                rooms: route.rooms.clone(),
                required_approvals: route.required_approvals.unwrap_or(default_required),
                required_override: route.required_approvals,
                approvals_after_last_push: route.approvals_after_last_push,
                room_reminders: route.room_reminders,
                announce: route.announce,
                ignore_title_patterns: route
                    .ignore_title_patterns
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| p.to_lowercase())
                    .collect(),
            });
        }
        Ok(Routing {
            routes: compiled,
            default_required,
            final_edits: Default::default(),
        })
    }

    /// Names the rooms that keep one message per PR and edit it as the PR changes (a Slack
    /// room through the Web API): they hear a PR's merge or decline whatever their route's
    /// `announce_merged` / `announce_declined` say, for the final edit of that message (which
    /// posts nothing new).
    pub fn with_final_edits(mut self, rooms: impl IntoIterator<Item = String>) -> Routing {
        self.final_edits = rooms.into_iter().collect();
        self
    }

    /// Whether `room` hears `event` of a PR its route sends it, by its route's switches or as
    /// the final edit of its message (`with_final_edits`).
    pub fn hears(&self, route: &CompiledRoute, room: &str, event: NotifyEvent) -> bool {
        route.announce.wants(event)
            || matches!(
                event,
                NotifyEvent::Merged | NotifyEvent::Declined | NotifyEvent::Withdrawn
            ) && self.edits(room)
    }

    /// Whether `room` keeps one message per PR and edits it (`with_final_edits`): a PR that
    /// stops being reviewable there is shown so (`NotifyEvent::Withdrawn`), not withdrawn.
    pub fn edits(&self, room: &str) -> bool {
        self.final_edits.contains(room)
    }

    /// The index of the route a repository of `flavour` named `full_name` takes (to cache it),
    /// see `route_at`.
    pub fn route_index(&self, flavour: Flavour, full_name: &str) -> Option<usize> {
        self.routes.iter().position(|r| {
            r.matchers
                .iter()
                .any(|(only, m)| only.is_none_or(|f| f == flavour) && m.is_match(full_name))
        })
    }

    /// The route at an index `route_index` gave; `None` if out of range.
    pub fn route_at(&self, index: usize) -> Option<&CompiledRoute> {
        self.routes.get(index)
    }

    /// The route of a repository of `flavour` named `full_name`: the first that matches.
    pub fn route(&self, flavour: Flavour, full_name: &str) -> Option<&CompiledRoute> {
        self.route_index(flavour, full_name)
            .and_then(|i| self.route_at(i))
    }

    /// Approvals a PR in this repository needs: its route's number, else the service default
    /// (also for a repository no route matches).
    pub fn required_approvals(&self, flavour: Flavour, full_name: &str) -> u32 {
        self.route(flavour, full_name)
            .map_or(self.default_required, |r| r.required_approvals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(globs: &[&str], room: &str, required: Option<u32>) -> Route {
        Route {
            repositories: globs.iter().map(|s| s.to_string()).collect(),
            rooms: vec![room.into()],
            required_approvals: required,
            approvals_after_last_push: false,
            room_reminders: true,
            announce: Announce::default(),
            ignore_title_patterns: vec!["WIP".into(), "Draft:".into()],
        }
    }

    #[test]
    fn first_match_wins() {
        let routing = Routing::new(
            &[
                route(&["acme/api"], "api", Some(3)),
                route(&["acme/*", "other/api"], "backend", None),
                route(&["*"], "everything", Some(1)),
            ],
            2,
        )
        .unwrap();
        assert_eq!(
            routing.route(Flavour::Cloud, "acme/api").unwrap().rooms[0],
            "api"
        );
        assert_eq!(
            routing.route(Flavour::Cloud, "ACME/web").unwrap().rooms[0],
            "backend"
        );
        assert_eq!(
            routing.route(Flavour::Cloud, "other/api").unwrap().rooms[0],
            "backend"
        );
        assert_eq!(
            routing.route(Flavour::Cloud, "other/web").unwrap().rooms[0],
            "everything"
        );
        assert_eq!(routing.required_approvals(Flavour::Cloud, "acme/api"), 3);
        assert_eq!(routing.required_approvals(Flavour::Cloud, "acme/web"), 2);
        assert_eq!(routing.required_approvals(Flavour::Cloud, "x/y"), 1);
    }

    #[test]
    fn a_route_may_name_its_bitbucket() {
        let routing = Routing::new(
            &[
                route(&["datacenter:PAY/*"], "dc", None),
                route(&["cloud:pay/*"], "cloud", None),
            ],
            2,
        )
        .unwrap();
        assert_eq!(
            routing.route(Flavour::DataCenter, "PAY/api").unwrap().rooms[0],
            "dc"
        );
        assert_eq!(
            routing.route(Flavour::Cloud, "pay/api").unwrap().rooms[0],
            "cloud"
        );
        assert!(routing.route(Flavour::Cloud, "other/api").is_none());
    }

    #[test]
    fn unrouted_repositories_have_no_room() {
        let routing = Routing::new(&[route(&["acme/*"], "backend", None)], 2).unwrap();
        assert!(routing.route(Flavour::Cloud, "other/api").is_none());
        assert_eq!(routing.required_approvals(Flavour::Cloud, "other/api"), 2);
    }

    #[test]
    fn ignore_patterns_are_case_insensitive() {
        let routing = Routing::new(&[route(&["*"], "r", None)], 2).unwrap();
        let r = routing.route(Flavour::Cloud, "a/b").unwrap();
        assert!(r.ignores_title("[wip] new parser"));
        assert!(r.ignores_title("Draft: things"));
        assert!(r.ignores_title("Parser rewrite (WIP)"));
        assert!(!r.ignores_title("Fix drafting tool"));
        assert!(!r.ignores_title("Wipe stale sessions"));
    }
}
