//! The status page as HTML (maud: every interpolated value is HTML-encoded, so titles, names and
//! branch names — user input — stay text). No JavaScript; one inline stylesheet; the chart is
//! inline SVG; narrow screens get one PR per block instead of a wide table.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{KnownAs, PrLine, RepositorySection, StatusPage};
use crate::notify::doc::format_age;
use crate::store::outbox::Subject;
use crate::store::status::AgeBuckets;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:0 12px 32px;color:#1b1f23;line-height:1.4}
h1{font-size:1.5em}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:1.6em}
h3{margin:1.2em 0 .3em}h4{margin:.8em 0 .2em;font-size:1em;color:#57606a}
table{border-collapse:collapse;width:100%;margin:.2em 0 .8em}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-size:.85em;color:#57606a;font-weight:600}
.age{white-space:nowrap}.late{color:#c62828;font-weight:700}
.FAILED{color:#c62828}.SUCCESSFUL{color:#2e7d32}.INPROGRESS{color:#9a6700}
.muted{color:#57606a}.rejected,.failed{color:#c62828}.processed,.posted{color:#2e7d32}
.clear{color:#2e7d32}
svg text{font-size:12px;fill:#1b1f23}
td{overflow-wrap:break-word}
@media (max-width:700px){
 table thead{display:none}
 table tr{display:block;border-bottom:1px solid #d0d7de;padding:6px 0}
 table td{display:block;border:0;padding:1px 0}
 td[data-label]::before{content:attr(data-label) ': ';color:#57606a;font-size:.85em}
}
";

/// The whole page.
pub fn render(page: &StatusPage) -> String {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "pr-reminder status" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "pr-reminder status" }
                p.muted {
                    "As of " time datetime=(page.now.to_rfc3339()) { (when(page.now)) }
                    ". Ages in red are past the escalation threshold ("
                    (format_age(page.escalate_after)) "). "
                    a href="status/review-flow" { "The review flow in numbers" }
                }
                h2 id="queue" { "Waiting for review" }
                @for room in &page.rooms {
                    section.room {
                        h3 { "Room " (room.room) }
                        @if room.repositories.is_empty() {
                            p.clear { "Nothing waits." }
                        }
                        @for repository in &room.repositories {
                            (repository_section(repository, page.now))
                        }
                    }
                }
                h2 id="people" { "Whose turn: who is waited on" }
                (super::turns::people_section(&page.people, page.now))
                h2 id="reminders" { "Personal reminders" }
                (super::direct::section(&page.reminders))
                h2 id="chart" { "Open pull requests by age" }
                (chart(&page.chart))
                h2 id="health" { "Health" }
                (health(page))
            }
        }
    };
    markup.into_string()
}

fn repository_section(r: &RepositorySection, now: DateTime<Utc>) -> Markup {
    html! {
        div.repository {
            h4 { (r.repository) }
            (pr_table("Waiting for review", "waiting-review", &r.waiting_review, now))
            (pr_table("Waiting on the author", "waiting-author", &r.waiting_author, now))
            (pr_table("Drafts and work in progress", "drafts", &r.drafts, now))
            (pr_table("Snoozed", "snoozed", &r.snoozed, now))
        }
    }
}

fn pr_table(caption: &str, class: &str, lines: &[PrLine], now: DateTime<Utc>) -> Markup {
    if lines.is_empty() {
        return html! {};
    }
    html! {
        table class={ "prs " (class) } {
            caption style="text-align:left;font-weight:600" { (caption) " (" (lines.len()) ")" }
            thead { tr { th { "Pull request" } th { "Author" } th { "Approvals" } th { "Changes requested" } th { "Build" } th { "Turn" } th { "Age" } } }
            tbody {
                @for l in lines {
                    (pr_row(l, now))
                }
            }
        }
    }
}

fn pr_row(l: &PrLine, now: DateTime<Utc>) -> Markup {
    let v = &l.view;
    // Only web links: a stored URL is Bitbucket's, but never trusted to be one.
    let href = v
        .url
        .as_deref()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
    html! {
        tr.pr data-number=(v.number) {
            td data-label="Pull request" {
                @if let Some(href) = href {
                    a href=(href) { "#" (v.number) " " (v.title) }
                } @else {
                    "#" (v.number) " " (v.title)
                }
                @for snooze in &l.snoozes {
                    div.snooze.muted { "Snoozed " (snooze) }
                }
            }
            td data-label="Author" { (v.author) }
            td data-label="Approvals" {
                (v.approvals) "/" (v.required_approvals)
                @if !v.approved_by.is_empty() {
                    " " span.muted { "by " (v.approved_by.join(", ")) }
                }
            }
            td data-label="Changes requested" {
                @if v.changes_requested_by.is_empty() { span.muted { "none" } }
                @else { (v.changes_requested_by.join(", ")) }
            }
            td data-label="Build" {
                @match v.build_state.map(|s| s.as_str()) {
                    Some(state) => span class=(state) { (state.to_lowercase()) },
                    None => span.muted { "none" },
                }
            }
            (super::turns::turn_cell(v, now))
            td data-label="Age" class={ "age" @if l.late { " late" } } { (format_age(l.age)) }
        }
    }
}

/// Open PRs per repository by age, as horizontal stacked bars (under 1 day green, 1-3 days
/// amber, over 3 days red), scaled to the fullest repository.
fn chart(rows: &[AgeBuckets]) -> Markup {
    if rows.is_empty() {
        return html! { p.clear { "No open pull requests." } };
    }
    const LABEL: f64 = 220.0;
    const BARS: f64 = 440.0;
    const ROW: f64 = 24.0;
    const TOP: f64 = 28.0;
    let most = rows
        .iter()
        .map(|r| r.under_1d + r.from_1d_to_3d + r.over_3d)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let height = TOP + ROW * rows.len() as f64;
    let width = LABEL + BARS + 60.0;
    let colours = [
        ("#2e7d32", "under 1 day"),
        ("#f9a825", "1-3 days"),
        ("#c62828", "over 3 days"),
    ];
    html! {
        svg id="age-chart" xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox={ "0 0 " (width) " " (height) } width="100%"
            style={ "max-width:" (width) "px" }
            aria-label="Open pull requests per repository by age" {
            title { "Open pull requests per repository by age" }
            @for (i, (colour, name)) in colours.iter().enumerate() {
                rect x=(LABEL + i as f64 * 120.0) y="4" width="12" height="12" fill=(colour) {}
                text x=(LABEL + 16.0 + i as f64 * 120.0) y="14" { (name) }
            }
            @for (i, r) in rows.iter().enumerate() {
                @let y = TOP + ROW * i as f64;
                @let total = r.under_1d + r.from_1d_to_3d + r.over_3d;
                g.bar {
                    text x="0" y=(y + 15.0) { (shorten(&r.repository, 32)) }
                    @for ((x, w, n), (colour, name)) in segments(r, LABEL, BARS / most).into_iter().zip(colours) {
                        @if n > 0 {
                            rect x=(x) y=(y + 3.0) width=(w) height=(ROW - 6.0) fill=(colour) {
                                title { (r.repository) ": " (n) " " (name) }
                            }
                        }
                    }
                    text x=(LABEL + BARS * total as f64 / most + 6.0) y=(y + 15.0) { (total) }
                }
            }
        }
    }
}

/// (x, width, count) of the three bars of a row starting at `x`, `scale` wide per PR.
fn segments(r: &AgeBuckets, mut x: f64, scale: f64) -> [(f64, f64, i64); 3] {
    [r.under_1d, r.from_1d_to_3d, r.over_3d].map(|n| {
        let w = n as f64 * scale;
        let at = x;
        x += w;
        (at, w, n)
    })
}

/// At most `most` characters, with an ellipsis when cut.
fn shorten(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(most - 1).collect();
    cut.push('…');
    cut
}

/// `2026-11-30 07:25 UTC` from stored timestamp text (as is when unreadable).
fn stamp(text: &str) -> String {
    crate::domain::Timestamp::parse(text)
        .map(|t| when(t.to_datetime()))
        .unwrap_or_else(|_| text.to_owned())
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn health(page: &StatusPage) -> Markup {
    html! {
        h3 { "Last delivery per Bitbucket flavour" }
        @if page.last_deliveries.is_empty() {
            p.muted { "No delivery has arrived yet." }
        } @else {
            table id="deliveries" {
                thead { tr { th { "Flavour" } th { "Arrived" } th { "Event" } th { "Outcome" } th { "Detail" } } }
                tbody {
                    @for d in &page.last_deliveries {
                        tr {
                            td { (flavour_name(&d.flavour)) }
                            td { (stamp(&d.received_at)) }
                            td { (d.event_key.as_deref().unwrap_or("-")) }
                            td class=(d.outcome) { (d.outcome) }
                            td {
                                @if let Some(repository) = &d.repository {
                                    (repository)
                                    @if let Some(n) = d.pr_number { " #" (n) }
                                    " "
                                }
                                @if let Some(reason) = &d.reason { span.muted { (reason) } }
                            }
                        }
                    }
                }
            }
        }
        h3 { "Refused deliveries, last 24 hours" }
        @if page.refusals.is_empty() {
            p.clear { "None." }
        } @else {
            table id="refusals" {
                thead { tr { th { "Flavour" } th { "Reason" } th { "Count" } th { "Last" } } }
                tbody {
                    @for r in &page.refusals {
                        tr {
                            td { (flavour_name(&r.flavour)) }
                            td.rejected { (r.reason) }
                            td { (r.count) }
                            td { (stamp(&r.last_at)) }
                        }
                    }
                }
            }
        }
        h3 { "Failed chat messages" }
        @if page.failed_messages.is_empty() {
            p.clear { "None." }
        } @else {
            table id="failed" {
                thead { tr { th { "Id" } th { "Room" } th { "About" } th { "Attempts" } th { "Last error" } th { "Queued" } } }
                tbody {
                    @for m in &page.failed_messages {
                        tr {
                            td { (m.id) }
                            td { (m.room) }
                            td {
                                @match &m.subject {
                                    Subject::Digest => "digest",
                                    Subject::Report => "weekly report",
                                    Subject::PullRequest { full_name, number, .. } => { (full_name) " #" (number) },
                                }
                            }
                            td { (m.attempts) }
                            td.failed { (m.last_error.as_deref().unwrap_or("-")) }
                            td { (stamp(&m.created_at)) }
                        }
                    }
                }
            }
            p.muted { "Send them again with " code { "pr-reminder outbox retry --failed" } " (or one by its id: " code { "pr-reminder outbox retry <id>" } ")." }
        }
        h3 { "Last sweep per room" }
        @match &page.schedule {
            Some(schedule) => p.muted { "Digests are scheduled: " code { (schedule) } "." },
            None => p.muted {
                "No built-in schedule: digests are posted when something calls "
                code { "POST /sweep" } " or " code { "pr-reminder sweep" }
                " (or set " code { "schedule" } " under " code { "[sweep]" } ")."
            },
        }
        @if page.sweeps.is_empty() {
            p.muted { "No sweep has run yet." }
        } @else {
            table id="sweeps" {
                thead { tr { th { "Room" } th { "At" } th { "Trigger" } th { "Outcome" } th { "Waiting for review" } th { "Waiting on author" } } }
                tbody {
                    @for s in &page.sweeps {
                        tr {
                            td { (s.room) }
                            td { (stamp(&s.at)) }
                            td { (s.trigger) }
                            td class=(s.outcome) {
                                (s.outcome)
                                @if let Some(reason) = &s.reason { " (" (reason) ")" }
                            }
                            td { (s.waiting_review) }
                            td { (s.waiting_on_author) }
                        }
                    }
                }
            }
        }
        @if let Some(leases) = &page.leases {
            h3 { "Which replica sends each room" }
            @if leases.is_empty() {
                p.muted { "No room has had a message to send yet." }
            } @else {
                table id="leases" {
                    thead { tr { th { "Room" } th { "Replica" } th { "Lease until" } th { "Its session" } } }
                    tbody {
                        @for l in leases {
                            tr {
                                td { (l.room) }
                                td { (holder(&l.holder)) }
                                td { (stamp(&l.expires_at)) }
                                @if l.alive {
                                    td.clear { "connected" }
                                } @else {
                                    td.failed { "gone: another replica takes the room at its next look" }
                                }
                            }
                        }
                    }
                }
            }
        }
        (servers(page))
        (webhooks(page))
        h3 { "Last reconciliation per site" }
        @if page.sites.is_empty() {
            p.muted { "No Bitbucket site is configured ([[bitbucket]])." }
        } @else {
            table id="sites" {
                thead { tr { th { "Site" } th { "Last successful pass" } th { "Repositories" } th { "Requests (last passes)" } } }
                tbody {
                    @for (site, last) in &page.sites {
                        tr {
                            td { (site) }
                            @match last {
                                Some(r) => {
                                    td { (stamp(&r.last_pass_on)) }
                                    td { (r.repositories) }
                                    td { (r.last_requests) }
                                },
                                None => { td.muted colspan="3" { "never" } },
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Each Data Center server identity with its last delivery, and the sites whose own links name
/// another base URL (issue 21: an operator sees two identities where they know of one server).
fn servers(page: &StatusPage) -> Markup {
    html! {
        @if !page.servers.is_empty() {
            h3 { "Data Center servers" }
            p.muted {
                "Each identity Data Center repositories are stored under, with its last delivery. \
                 Two rows for what is one server? Name its other base URL in the site's "
                code { "aliases" } "."
            }
            table id="servers" {
                thead { tr { th { "Server" } th { "Known as" } th { "Repositories" } th { "Open pull requests" } th { "Last delivery" } } }
                tbody {
                    @for s in &page.servers {
                        tr {
                            td { code { (s.server) } }
                            td {
                                @match &s.known_as {
                                    KnownAs::Site { url, aliases } => {
                                        "site " (url)
                                        @if !aliases.is_empty() { " (aliases: " (aliases.join(", ")) ")" }
                                    },
                                    KnownAs::Unknown => "deliveries without links (servers before 5.14)",
                                    KnownAs::Links => "the host its deliveries' links name; no site names it",
                                }
                            }
                            td { (s.repositories) }
                            td { (s.open) }
                            @match &s.last_delivery {
                                Some(d) => td {
                                    (stamp(&d.received_at)) " "
                                    (d.event_key.as_deref().unwrap_or("-"))
                                    @if let Some(repository) = &d.repository {
                                        " " (repository)
                                        @if let Some(n) = d.pr_number { " #" (n) }
                                    }
                                },
                                None => td.muted { "none" },
                            }
                        }
                    }
                }
            }
        }
        @for (site, base) in &page.foreign_links {
            p.failed.links {
                "Bitbucket at " (site) " writes " code { (base) } " in its links, which is neither \
                 the site's url nor one of its aliases: deliveries whose links name it are stored as \
                 another server, and their pull requests twice. If it is this server, add "
                code { "\"" (base) "\"" } " to the site's " code { "aliases" } "."
            }
        }
    }
}

/// Webhook coverage per repository (issue 26): what covers it, the last delivery from it, and
/// "webhook silent?".
fn webhooks(page: &StatusPage) -> Markup {
    let silence = &page.webhook_silence_days;
    html! {
        h3 { "Webhook coverage" }
        @if page.webhooks.is_empty() {
            p.muted {
                "Not checked: reconciliation reads the hooks of sites with a "
                code { "webhook_url" } " (see " code { "pr-reminder connect" } ")."
            }
        } @else {
            p.muted {
                "What reconciliation last found of pr-reminder's hook (the one pointing at the                  site's " code { "webhook_url" } "). " code { "pr-reminder connect" }
                " creates or repairs it."
            }
            table id="webhooks" {
                thead { tr { th { "Repository" } th { "Covered by" } th { "Last delivery" } th { "Open pull requests" } th { "Checked" } } }
                tbody {
                    @for w in &page.webhooks {
                        tr.webhook data-repository=(w.repository) data-state=(w.state) {
                            td data-label="Repository" { (w.repository) br; span.muted { (w.site) } }
                            td data-label="Covered by" class=(coverage_class(&w.state)) {
                                (coverage_text(w))
                                @if let Some(detail) = &w.detail { br; span.muted { (detail) } }
                            }
                            td data-label="Last delivery" {
                                @match &w.last_delivery {
                                    Some(at) => (stamp(at)),
                                    None => span.muted { "none" },
                                }
                                @if w.silent {
                                    br; span.failed.silent {
                                        "webhook silent? no delivery for " (silence)
                                        " days while its pull requests changed"
                                    }
                                }
                            }
                            td data-label="Open pull requests" { (w.open) }
                            td data-label="Checked" { (stamp(&w.checked_on)) }
                        }
                    }
                }
            }
        }
    }
}

/// `workspace hook`, `repository hook (inactive)`, `project hook (events missing: pr:merged)`,
/// `none`, `unknown`.
fn coverage_text(w: &super::webhooks::WebhookLine) -> String {
    let by = w.covered_by.as_deref().map(|s| format!("{s} hook"));
    match (w.state.as_str(), by) {
        ("covered", Some(by)) => by,
        ("inactive", Some(by)) => format!("{by} (inactive)"),
        ("incomplete", Some(by)) => {
            format!("{by} (events missing: {})", w.events_missing.join(", "))
        }
        ("unknown", _) => "unknown".to_owned(),
        _ => "none".to_owned(),
    }
}

fn coverage_class(state: &str) -> &'static str {
    match state {
        "covered" => "clear",
        "unknown" => "muted",
        _ => "failed",
    }
}

/// A lease holder (`host/process id/start in ms since the epoch`, see the dispatcher) as people
/// read it: `web-1, process 4242, started 2026-12-07 09:00 UTC`; as it is if it is not one.
fn holder(holder: &str) -> String {
    let mut parts = holder.rsplitn(3, '/');
    let (Some(started), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return holder.to_owned();
    };
    match (
        started
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis),
        pid.parse::<u32>(),
    ) {
        (Some(started), Ok(pid)) => format!("{host}, process {pid}, started {}", when(started)),
        _ => holder.to_owned(),
    }
}

fn flavour_name(flavour: &str) -> &str {
    match flavour {
        "cloud" => "Bitbucket Cloud",
        "datacenter" => "Bitbucket Data Center",
        "" => "(not recorded)",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::holder;

    #[test]
    fn a_lease_holder_reads_as_host_process_and_start() {
        assert_eq!(
            holder("web-1/4242/1796540400000"),
            "web-1, process 4242, started 2026-12-06 07:00 UTC"
        );
        // A host name with a slash in it stays whole; anything else is shown as it is.
        assert_eq!(
            holder("a/b/7/0"),
            "a/b, process 7, started 1970-01-01 00:00 UTC"
        );
        assert_eq!(holder("replica"), "replica");
        assert_eq!(holder("x/y/z"), "x/y/z");
    }
}
