//! `GET /status` on PostgreSQL: the lists, the chart's age buckets and the health tables.

use super::*;
use crate::fake_chat::Fake;
use crate::helpers::{route, set_repository, uuid_like, ManualClock};
use crate::lifecycle::{key_of, pr_event};
use crate::status::{start, HOSTILE, STATUS_TOKEN};
use pr_reminder::config::{NotifySettings, Room, SecretToken, Sink};
use wiremock::ResponseTemplate;

const HOSTILE_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;co&quot;";
const REFUSAL: &str = "<b>no such room</b>";

/// A PR event of `repository` opened at `created_on`.
fn pr(repository: &str, number: i64, created_on: &str, title: &str) -> Value {
    let mut body = pr_event(
        number,
        "2026-11-24T08:59:00.000000+00:00",
        "OPEN",
        title,
        &format!("{number:012}"),
        &[],
    );
    set_repository(&mut body, repository);
    body["pullrequest"]["created_on"] = json!(created_on);
    body["pullrequest"]["links"]["html"]["href"] = json!(format!(
        "https://bitbucket.org/{repository}/pull-requests/{number}"
    ));
    body
}

fn with_participants(mut body: Value, participants: &[(&str, &str)]) -> Value {
    let users = crate::helpers::own_fixture("users.json");
    body["pullrequest"]["participants"] = participants
        .iter()
        .map(|(user, state)| {
            json!({
                "type": "participant", "user": users[*user], "role": "REVIEWER",
                "approved": *state == "approved", "state": state,
                "participated_on": "2026-11-24T08:00:00.000000+00:00",
            })
        })
        .collect();
    body
}

/// `status::seeded_app` on PostgreSQL: rooms `payments` (console) and `web` (a chat that
/// refuses), and at `start()`: acme/payments-api #1 (1 day), #2 hostile title approved by
/// Bob (5 days), #3 Carol asks for changes (2 days), #4 a draft (6 h), #5 "WIP: ..."
/// (2 d 23 h), #6 snoozed by Bob (6 days); acme/web #7 (1 h), refused by its room; one
/// refused delivery.
async fn seeded_app() -> Option<(PgApp, Fake)> {
    let fake = Fake::start(vec![ResponseTemplate::new(404).set_body_string(REFUSAL)]).await;
    let web_url = fake.url("/services/T/B/web-secret");
    let clock = ManualClock::running(start());
    let app = spawn_pg(
        "status",
        move |s| {
            s.notify = NotifySettings {
                rooms: vec![
                    Room {
                        name: "payments".into(),
                        sink: Sink::Console,
                    },
                    Room {
                        name: "web".into(),
                        sink: Sink::Slack(SecretString::from(web_url)),
                    },
                ],
                routes: vec![
                    route(&["acme/payments-api"], "payments"),
                    route(&["acme/web"], "web"),
                ],
                coalesce: Duration::from_millis(50),
                max_attempts: 1,
                timeout: Duration::from_secs(2),
                retry_min: Duration::from_millis(20),
                retry_max: Duration::from_millis(100),
                room_rate_per_minute: Some(6000),
            };
            s.monitoring.status_token = Some(SecretToken(SecretString::from(STATUS_TOKEN)));
        },
        clock.clock(),
    )
    .await?;
    let repo = "acme/payments-api";
    let bodies = [
        pr(repo, 1, "2026-11-23T09:00:00+00:00", "Newer one"),
        with_participants(
            pr(repo, 2, "2026-11-19T09:00:00+00:00", HOSTILE),
            &[("bob", "approved")],
        ),
        with_participants(
            pr(repo, 3, "2026-11-22T09:00:00+00:00", "Needs work"),
            &[("carol", "changes_requested")],
        ),
        {
            let mut draft = pr(repo, 4, "2026-11-24T03:00:00+00:00", "Draft one");
            draft["pullrequest"]["draft"] = json!(true);
            draft
        },
        pr(repo, 5, "2026-11-21T10:00:00+00:00", "WIP: later"),
        pr(repo, 6, "2026-11-18T09:00:00+00:00", "Snoozed one"),
        pr("acme/web", 7, "2026-11-24T08:00:00+00:00", "Web one"),
    ];
    for body in &bodies {
        processed(&app, "pullrequest:created", body).await;
    }
    let refused = app
        .post(
            &[
                ("X-Request-UUID", &uuid_like("status")),
                ("X-Hub-Signature", &sign(SECRET, b"{}")),
            ],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    app.wait_count("SELECT count(*) FROM deliveries", 8).await;

    // Bob snoozes #6 for a day (as `/reviews snooze` records it).
    sqlx::query(
        "INSERT INTO snoozes (user_key, repository_key, number, until, created_at)
         SELECT $1, repository_key, 6, '2026-11-25T09:00:00.000000Z',
                '2026-11-24T09:00:00.000000Z'
           FROM repositories WHERE full_name = 'acme/payments-api'",
    )
    .bind(key_of("bob"))
    .execute(&app.db)
    .await
    .unwrap();

    // The web room refused #7's message for good.
    fake.wait_for_hits(1).await;
    app.wait_count("SELECT count(*) FROM outbox WHERE state = 'failed'", 1)
        .await;
    Some((app, fake))
}

/// The text between the first `from` and the next `to` after it.
fn between<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in:\n{text}"));
    let rest = &text[start..];
    let end = rest[from.len()..]
        .find(to)
        .map_or(rest.len(), |i| i + from.len());
    &rest[..end]
}

/// The PR numbers of the rows in `html`, in order.
fn rows(html: &str) -> Vec<i64> {
    html.split("<tr class=\"pr\" data-number=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
        .collect()
}

/// The page of `status::the_page_lists_what_waits_oldest_first_...`, read from PostgreSQL:
/// the lists and their order, the chart's age buckets, the last delivery of each flavour,
/// the refusals of the day, the failed message.
#[tokio::test]
async fn the_status_page_reads_lists_chart_and_health_from_postgres() {
    let Some((app, _fake)) = seeded_app().await else {
        return;
    };
    let (status, html) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(!html.contains("<script"), "{html}");

    let payments = between(&html, "<h3>Room payments</h3>", "<h3>Room ");
    let web = between(&html, "<h3>Room web</h3>", "<h2 id=\"chart\">");
    let review = between(payments, "<table class=\"prs waiting-review\">", "</table>");
    let author = between(payments, "<table class=\"prs waiting-author\">", "</table>");
    let drafts = between(payments, "<table class=\"prs drafts\">", "</table>");
    let snoozed = between(payments, "<table class=\"prs snoozed\">", "</table>");
    assert_eq!(rows(review), [2, 1]);
    assert_eq!(rows(author), [3]);
    assert_eq!(rows(drafts), [5, 4]);
    assert_eq!(rows(snoozed), [6]);
    assert_eq!(rows(payments), [2, 1, 3, 5, 4, 6], "the order of the lists");
    assert_eq!(rows(web), [7]);

    let two = between(review, "data-number=\"2\"", "</tr>");
    assert!(
        two.contains(&format!(
            "<a href=\"https://bitbucket.org/acme/payments-api/pull-requests/2\">#2 {HOSTILE_ESCAPED}</a>"
        )),
        "{two}"
    );
    assert!(
        two.contains("<td data-label=\"Author\">Alice Author</td>"),
        "{two}"
    );
    assert!(
        two.contains(
            "<td data-label=\"Approvals\">1/2 <span class=\"muted\">by Bob Reviewer</span></td>"
        ),
        "{two}"
    );
    assert!(
        two.contains("<td data-label=\"Age\" class=\"age late\">5d</td>"),
        "{two}"
    );
    let one = between(review, "data-number=\"1\"", "</tr>");
    assert!(
        one.contains("<td data-label=\"Age\" class=\"age\">1d</td>"),
        "{one}"
    );
    assert!(
        one.contains("<td data-label=\"Approvals\">0/2</td>"),
        "{one}"
    );
    let three = between(author, "data-number=\"3\"", "</tr>");
    assert!(
        three.contains("<td data-label=\"Changes requested\">Carol Reviewer</td>"),
        "{three}"
    );
    assert!(drafts.contains("class=\"age\">2d 23h</td>"), "{drafts}");

    // The chart's age buckets (every open PR, drafts and snoozed too).
    let chart = between(&html, "<svg id=\"age-chart\"", "</svg>");
    for title in [
        "<title>acme/payments-api: 1 under 1 day</title>",
        "<title>acme/payments-api: 3 1-3 days</title>",
        "<title>acme/payments-api: 2 over 3 days</title>",
        "<title>acme/web: 1 under 1 day</title>",
    ] {
        assert!(chart.contains(title), "{title} in {chart}");
    }
    assert_eq!(chart.matches("<g class=\"bar\">").count(), 2, "{chart}");

    // Health: the last Cloud delivery (the refused one), refusals of the day, the failed
    // message with its escaped error.
    let deliveries = between(&html, "<table id=\"deliveries\">", "</table>");
    assert!(
        deliveries.contains("<td>Bitbucket Cloud</td>"),
        "{deliveries}"
    );
    assert!(
        deliveries.contains("<td class=\"rejected\">rejected</td>"),
        "{deliveries}"
    );
    assert!(!deliveries.contains("Data Center"), "{deliveries}");
    let refusals = between(&html, "<table id=\"refusals\">", "</table>");
    assert!(
        refusals.contains(
            "<td class=\"rejected\">missing or unreadable X-Event-Key header</td><td>1</td>"
        ),
        "{refusals}"
    );
    let failed = between(&html, "<table id=\"failed\">", "</table>");
    assert!(
        failed.contains("<td>web</td><td>acme/web #7</td><td>1</td>"),
        "{failed}"
    );
    assert!(
        failed.contains("HTTP 404 Not Found: &lt;b&gt;no such room&lt;/b&gt;"),
        "{failed}"
    );
    assert!(!html.contains("web-secret"), "no chat URL on the page");
    assert!(html.contains("No sweep has run yet."), "{html}");
    assert!(html.contains("No Bitbucket site is configured"), "{html}");
}

/// On PostgreSQL the health tables say which replica sends each room's messages and whether
/// its database session is still there (a killed replica's lease shows as gone until another
/// takes the room). SQLite's page has no such table: one process sends every room.
#[tokio::test]
async fn the_page_names_the_replica_sending_each_room() {
    let Some((app, _fake)) = seeded_app().await else {
        return;
    };
    // Each room's sender takes its lease as it starts.
    app.wait_count("SELECT count(*) FROM room_leases", 2).await;
    sqlx::query(
        "INSERT INTO room_leases (room, holder, expires_at, backend_pid)
         VALUES ('retired', 'old-host/1/1', now() + interval '1 minute', 0)",
    )
    .execute(&app.db)
    .await
    .unwrap();

    let (status, html) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200, "{html}");
    let start = html
        .find("<table id=\"leases\">")
        .expect("the leases table");
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    let rows: Vec<&str> = table.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 3, "{table}");
    let this_process = format!("/{}/", std::process::id());
    for (row, room) in rows.iter().zip(["payments", "retired", "web"]) {
        assert!(row.starts_with(&format!("<td>{room}</td>")), "{row}");
    }
    for row in [rows[0], rows[2]] {
        assert!(
            row.contains(&this_process) && row.contains(">connected<"),
            "{row}"
        );
    }
    assert!(
        rows[1].contains("old-host/1/1") && rows[1].contains(">gone: another replica"),
        "{}",
        rows[1]
    );
}
