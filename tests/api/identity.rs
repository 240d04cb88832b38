//! One Bitbucket Data Center server, one identity (issue 21): whatever the deliveries' links say
//! (the public base URL, none at all on servers before 5.14, another one after a move behind a
//! proxy) and whatever address reconciliation reaches the server at, each pull request is stored,
//! listed and announced once. Every scenario here is written once and runs on SQLite and on
//! PostgreSQL (`on_both!`).
//!
//! The payloads are the real ones in `../shared/fixtures/bitbucket/server`: drone-go-scm's
//! `PRJ/my-repo` (repository 1 of one server) sends `pr_open.json` and `pr_declined.json` without
//! any link, as servers before 5.14 did, and `pr_modified_toref.json` (the same PR #2) with links
//! naming `http://example.com:7990`.

use pr_reminder::config::{Room, SecretToken, Settings, Sink};
use pr_reminder::domain::Flavour;
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::datacenter::{bytes, deliver_as};
use crate::helpers::{
    on_both, route, shared_fixtures, spawn_on, uuid_like, ManualClock, On, Served,
};
use crate::metrics::{value, METRICS_TOKEN};
use crate::reconcile::{reconcile, site, TOKEN};
use crate::status::between;

pub(crate) const STATUS_TOKEN: &str = "identity-status-token-0123456789";

/// The status and metrics tokens.
pub(crate) fn tokens(s: &mut Settings) {
    s.monitoring.status_token = Some(SecretToken(SecretString::from(STATUS_TOKEN)));
    s.monitoring.metrics_token = Some(SecretToken(SecretString::from(METRICS_TOKEN)));
}

// ---------------------------------------------------------------------------------------------
// Deliveries' flavour.

/// A `repo:refs_changed` delivery as a Data Center server sends it (Atlassian's "Event payload"
/// page: `eventKey`, `date`, `actor`, `repository`, `changes`).
fn refs_changed() -> Value {
    json!({
        "eventKey": "repo:refs_changed",
        "date": "2026-11-24T10:00:00+0100",
        "actor": {"name": "admin", "id": 1, "displayName": "Administrator", "slug": "admin"},
        "repository": {"slug": "my-repo", "id": 1, "name": "my-repo",
                       "project": {"key": "PRJ", "id": 2, "name": "PRJ"}},
        "changes": [{"ref": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"},
                     "refId": "refs/heads/main",
                     "fromHash": "ecddabb624f6f5ba43816f5926e580a5f680a932",
                     "toHash": "178864a7d521b6f5e720b386b2c2b0ef8563e0dc",
                     "type": "UPDATE"}]
    })
}

/// Data Center's events other than `pr:*` (`repo:refs_changed`, `mirror:repo_synchronized`,
/// `repo:modified`, `project:modified`) are recorded, shown and counted as Data Center: the
/// headers as a whole (`X-Request-Id`, no Cloud UUIDs) say who sent them.
async fn datacenter_repository_events_are_datacenter(app: &impl Served) {
    for key in [
        "repo:refs_changed",
        "mirror:repo_synchronized",
        "repo:modified",
        "project:modified",
    ] {
        let mut body = refs_changed();
        body["eventKey"] = json!(key);
        let answer = deliver_as(app, key, &uuid_like("dc-other"), bytes(&body)).await;
        assert_eq!(answer.status, 200, "{key}: {}", answer.body);
        assert_eq!(answer.body["status"], "ignored", "{key}: {}", answer.body);
    }
    let rows: Vec<(Option<String>, Option<String>)> = app
        .query_rows("SELECT event_key, flavour FROM deliveries ORDER BY id")
        .await;
    assert_eq!(
        rows,
        [
            "repo:refs_changed",
            "mirror:repo_synchronized",
            "repo:modified",
            "project:modified"
        ]
        .iter()
        .map(|k| (Some(k.to_string()), Some("datacenter".to_owned())))
        .collect::<Vec<_>>()
    );
    let (status, metrics) = app.get_text("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{metrics}");
    assert_eq!(
        value(
            &metrics,
            "pr_reminder_webhook_deliveries_total{flavour=\"datacenter\",outcome=\"ignored\"}"
        ),
        "4"
    );
    assert_eq!(
        value(
            &metrics,
            "pr_reminder_webhook_deliveries_total{flavour=\"cloud\",outcome=\"ignored\"}"
        ),
        "0"
    );
    let (status, page) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200, "{page}");
    let deliveries = crate::status::between(&page, "<table id=\"deliveries\">", "</table>");
    assert!(
        deliveries.contains("<td>Bitbucket Data Center</td>")
            && deliveries.contains("<td>project:modified</td>")
            && !deliveries.contains("Bitbucket Cloud"),
        "{deliveries}"
    );
}

on_both!(
    datacenter_repository_events_are_recorded_shown_and_counted_as_datacenter,
    links_appearing_after_an_upgrade_are_the_same_repository,
    one_site_owns_link_less_deliveries_and_warns_of_its_other_base_url,
    a_split_server_merges_once_its_other_base_url_is_an_alias,
    the_migration_merges_what_links_appearing_had_split,
);

async fn datacenter_repository_events_are_recorded_shown_and_counted_as_datacenter(on: On) {
    let clock = pr_reminder::clock::Clock::system();
    let Some(app) = spawn_on(on, "dcflavour", tokens, clock).await else {
        return;
    };
    datacenter_repository_events_are_datacenter(&app).await;
}

// ---------------------------------------------------------------------------------------------
// One server, one identity.

pub(crate) const REPO: &str = "PRJ/my-repo";
/// The host drone-go-scm's payloads with links name (`http://example.com:7990`).
const PUBLIC: &str = "http://example.com:7990";

/// A real Data Center payload of drone-go-scm's `PRJ/my-repo`; `None` (SKIPPED was printed)
/// without the shared fixtures.
fn drone(name: &str) -> Option<Value> {
    let path = shared_fixtures()?.join("server/drone-go-scm").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Some(serde_json::from_str(&text).unwrap())
}

/// The real payloads the scenarios use: `pr_open.json` (PR #2 opened, no link: a server before
/// 5.14), `pr_from_ref_updated.json` (#2 with a new commit, links naming `PUBLIC`: the same
/// server after an upgrade), `pr_modified_meta.json` (#6, links), and #2 declined as a server
/// with links sends it (`pr_declined.json` with `pr_from_ref_updated.json`'s links, a day after
/// the new commit).
pub(crate) struct Payloads {
    pub opened: Value,
    pub new_commit: Value,
    pub six: Value,
    pub declined: Value,
}

pub(crate) fn payloads() -> Option<Payloads> {
    let opened = drone("pr_open.json")?;
    let new_commit = drone("pr_from_ref_updated.json")?;
    let six = drone("pr_modified_meta.json")?;
    let mut declined = drone("pr_declined.json")?;
    let links = &new_commit["pullRequest"];
    declined["pullRequest"]["links"] = links["links"].clone();
    for side in ["fromRef", "toRef"] {
        declined["pullRequest"][side]["repository"]["links"] =
            links["toRef"]["repository"]["links"].clone();
    }
    declined["date"] = json!("2021-11-24T09:00:00+0000");
    declined["pullRequest"]["updatedDate"] = json!(1_637_744_400_000i64);
    declined["pullRequest"]["closedDate"] = json!(1_637_744_400_000i64);
    Some(Payloads {
        opened,
        new_commit,
        six,
        declined,
    })
}

/// The room `dc` (console) hears about PRJ/*; the tokens; the sweep token (for `/reconcile`).
pub(crate) fn room(s: &mut Settings) {
    tokens(s);
    s.notify.rooms = vec![Room {
        name: "dc".into(),
        sink: Sink::Console,
    }];
    s.notify.routes = vec![route(&["PRJ/*"], "dc")];
    s.sweep.token = Some(SecretToken(SecretString::from(TOKEN.to_owned())));
}

/// `room`, and one Data Center site at `url` over PRJ/my-repo with these aliases.
fn with_site(url: String, aliases: &[&str]) -> impl FnOnce(&mut Settings) {
    let mut dc = site(Flavour::DataCenter, url, &[REPO]);
    dc.aliases = aliases.iter().map(|a| a.parse().unwrap()).collect();
    move |s| {
        room(s);
        s.bitbucket = vec![dc];
    }
}

/// Delivers a Data Center payload, asserted processed for PRJ/my-repo.
pub(crate) async fn deliver(app: &impl Served, body: &Value) {
    let key = body["eventKey"].as_str().unwrap();
    let answer = deliver_as(app, key, &uuid_like("dc-id"), bytes(body)).await;
    assert_eq!(answer.status, 200, "{key}: {}", answer.body);
    assert_eq!(
        (&answer.body["status"], &answer.body["repository"]),
        (&json!("processed"), &json!(REPO)),
        "{key}: {}",
        answer.body
    );
}

/// (repository_key, full_name) of every repository, by key.
pub(crate) async fn repositories(app: &impl Served) -> Vec<(String, String)> {
    app.query_rows("SELECT repository_key, full_name FROM repositories ORDER BY repository_key")
        .await
}

/// (repository_key, number, state) of every PR, by key and number.
pub(crate) async fn prs(app: &impl Served) -> Vec<(String, i64, String)> {
    app.query_rows(
        "SELECT repository_key, number, state FROM pull_requests ORDER BY repository_key, number",
    )
    .await
}

/// (repository, number) of every row of `pending_reviews`.
pub(crate) async fn pending(app: &impl Served) -> Vec<(String, i64)> {
    app.query_rows("SELECT repository, number FROM pending_reviews ORDER BY number, repository")
        .await
}

/// (room, number, events) of every PR message in the outbox.
pub(crate) async fn messages(app: &impl Served) -> Vec<(String, i64, String)> {
    app.query_rows(
        "SELECT room, number, events FROM outbox WHERE kind = 'pull_request' ORDER BY id",
    )
    .await
}

/// The status page's Data Center servers table and what follows it up to the sites table.
async fn servers_section(app: &impl Served) -> String {
    let (status, page) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200, "{page}");
    between(
        &page,
        "<h3>Data Center servers</h3>",
        "<h3>Last reconciliation per site</h3>",
    )
    .to_owned()
}

/// `servers_section` rows: (server, known as, repositories, open, last delivery).
fn server_rows(section: &str) -> Vec<Vec<String>> {
    let body = between(section, "<tbody>", "</tbody>");
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let inner = cell.split_once('>').unwrap().1;
                    let inner = inner.split("</td>").next().unwrap();
                    inner.replace("<code>", "").replace("</code>", "")
                })
                .collect()
        })
        .collect()
}

/// The scenarios' clock: it runs from Tuesday 2026-11-24 10:00 UTC, so that every delivery of a
/// test arrives within that minute.
pub(crate) fn clock() -> ManualClock {
    ManualClock::running(crate::sweep::utc(2026, 11, 24, 10, 0))
}

/// The key PRJ/my-repo (repository 1) has on `server`.
fn key_on(server: &str) -> String {
    format!("datacenter/{server}/1")
}

/// No site configured; a server before 5.14 sends #2 without links (`unknown`), then, upgraded,
/// with links: the link-less rows are the linked repository's (same id, same name), merged as
/// the second delivery arrives. One repository, one PR, one announcement, listed once; the
/// status page shows the one identity with its last delivery; the decline, with links, closes
/// the PR.
async fn links_appearing_after_an_upgrade(app: &impl Served, p: &Payloads) {
    deliver(app, &p.opened).await;
    assert_eq!(
        repositories(app).await,
        [(key_on("unknown"), REPO.to_owned())]
    );
    deliver(app, &p.new_commit).await;
    let public = key_on("example.com:7990");
    assert_eq!(repositories(app).await, [(public.clone(), REPO.to_owned())]);
    assert_eq!(prs(app).await, [(public.clone(), 2, "OPEN".to_owned())]);
    assert_eq!(pending(app).await, [(REPO.to_owned(), 2)]);
    assert_eq!(
        messages(app).await,
        [("dc".to_owned(), 2, "opened".to_owned())],
        "announced once"
    );
    let users: Vec<(String,)> = app
        .query_rows("SELECT user_key FROM users ORDER BY user_key")
        .await;
    assert_eq!(users, [("datacenter/example.com:7990/user/1".to_owned(),)]);
    let section = servers_section(app).await;
    assert_eq!(
        server_rows(&section),
        [vec![
            "example.com:7990".to_owned(),
            "the host its deliveries' links name; no site names it".to_owned(),
            "1".to_owned(),
            "1".to_owned(),
            "2026-11-24 10:00 UTC pr:from_ref_updated PRJ/my-repo #2".to_owned(),
        ]],
        "{section}"
    );
    deliver(app, &p.declined).await;
    assert_eq!(prs(app).await, [(public, 2, "DECLINED".to_owned())]);
    assert_eq!(pending(app).await, []);
}

async fn links_appearing_after_an_upgrade_are_the_same_repository(on: On) {
    let Some(p) = payloads() else { return };
    let Some(app) = spawn_on(on, "dclinks", room, clock().clock()).await else {
        return;
    };
    links_appearing_after_an_upgrade(&app, &p).await;
}

/// Bitbucket Data Center's REST API (the fake) answering PRJ/my-repo's open PRs with `prs`
/// (the payloads' `pullRequest`, the REST resource's shape) and no build for any commit.
async fn rest_lists(server: &MockServer, prs: &[&Value]) {
    server.reset().await;
    let values: Vec<Value> = prs.iter().map(|p| p["pullRequest"].clone()).collect();
    Mock::given(method("GET"))
        .and(path("/rest/api/1.0/projects/PRJ/repos/my-repo/pull-requests"))
        .and(query_param("state", "OPEN"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"values": values, "isLastPage": true, "start": 0, "limit": 1000, "size": prs.len()}),
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/rest/api/latest/projects/PRJ/repos/my-repo/commits/[0-9a-f]+/builds$",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"values": [], "isLastPage": true})),
        )
        .mount(server)
        .await;
}

/// `host:port` of the fake API, the site's server.
fn site_server(server: &MockServer) -> String {
    server.uri().trim_start_matches("http://").to_owned()
}

/// One Data Center site, reached at the fake's loopback address while Bitbucket's links name its
/// public base URL, and no aliases: the link-less delivery (#2 opened) belongs to the one site;
/// the REST answer, whose links name `PUBLIC`, is the same PR. The status page lists the site's
/// identity with its last delivery, and warns that the links name another base URL.
async fn one_site_owns_link_less_deliveries(app: &impl Served, server: &MockServer, p: &Payloads) {
    let site = site_server(server);
    deliver(app, &p.opened).await;
    assert_eq!(repositories(app).await, [(key_on(&site), REPO.to_owned())]);
    rest_lists(server, &[&p.new_commit]).await;
    let (status, report) = reconcile(app).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (
            &report["repositories"][0]["open"],
            &report["repositories"][0]["updated"]
        ),
        (&json!(1), &json!(1)),
        "{report}"
    );
    assert_eq!(prs(app).await, [(key_on(&site), 2, "OPEN".to_owned())]);
    assert_eq!(pending(app).await, [(REPO.to_owned(), 2)]);
    let section = servers_section(app).await;
    assert_eq!(
        server_rows(&section),
        [vec![
            site.clone(),
            format!("site {}", server.uri()),
            "1".to_owned(),
            "1".to_owned(),
            "2026-11-24 10:00 UTC pr:opened PRJ/my-repo #2".to_owned(),
        ]],
        "{section}"
    );
    assert!(
        section.contains(&format!(
            "Bitbucket at {} writes <code>{PUBLIC}</code> in its links, which is neither the \
             site's url nor one of its aliases",
            server.uri()
        )),
        "{section}"
    );
}

async fn one_site_owns_link_less_deliveries_and_warns_of_its_other_base_url(on: On) {
    let Some(p) = payloads() else { return };
    let server = MockServer::start().await;
    let settings = with_site(server.uri(), &[]);
    let Some(app) = spawn_on(on, "dconesite", settings, clock().clock()).await else {
        return;
    };
    one_site_owns_link_less_deliveries(&app, &server, &p).await;
}

/// The site reached at an internal address, its links naming the public one, no aliases yet:
/// deliveries (#2 and #6, with links) are stored as the public host, reconciliation as the site,
/// so without aliases each PR is stored twice; the status page shows both identities and the
/// warning. #2 merged: reconciliation fetches it once and closes it under both keys.
async fn without_aliases_a_merged_pr_closes_under_every_key(
    app: &impl Served,
    server: &MockServer,
    p: &Payloads,
) {
    let site = site_server(server);
    deliver(app, &p.new_commit).await;
    deliver(app, &p.six).await;
    rest_lists(server, &[&p.new_commit, &p.six]).await;
    let (status, report) = reconcile(app).await;
    assert_eq!(status, 200, "{report}");
    let (public, internal) = (key_on("example.com:7990"), key_on(&site));
    assert_eq!(
        prs(app).await,
        [
            (internal.clone(), 2, "OPEN".to_owned()),
            (internal.clone(), 6, "OPEN".to_owned()),
            (public.clone(), 2, "OPEN".to_owned()),
            (public.clone(), 6, "OPEN".to_owned()),
        ]
    );
    let section = servers_section(app).await;
    let rows = server_rows(&section);
    assert_eq!(
        rows.iter()
            .map(|r| (r[0].as_str(), r[2].as_str(), r[3].as_str()))
            .collect::<Vec<_>>(),
        [(site.as_str(), "1", "2"), ("example.com:7990", "1", "2")],
        "{section}"
    );
    assert!(
        section.contains("neither the site's url nor one of its aliases"),
        "{section}"
    );

    // #2 merged: gone from the list; fetched once, closed under both keys.
    rest_lists(server, &[&p.six]).await;
    let mut merged = p.new_commit["pullRequest"].clone();
    merged["state"] = json!("MERGED");
    merged["updatedDate"] = json!(1_637_744_400_000i64);
    Mock::given(method("GET"))
        .and(path(
            "/rest/api/1.0/projects/PRJ/repos/my-repo/pull-requests/2",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(merged))
        .expect(1)
        .mount(server)
        .await;
    let (status, report) = reconcile(app).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["repositories"][0]["closed"], 1, "{report}");
    assert_eq!(
        prs(app).await,
        [
            (internal.clone(), 2, "MERGED".to_owned()),
            (internal, 6, "OPEN".to_owned()),
            (public.clone(), 2, "MERGED".to_owned()),
            (public, 6, "OPEN".to_owned()),
        ]
    );
    assert!(
        pending(app).await.iter().all(|(_, n)| *n == 6),
        "the merged PR left pending_reviews under both keys"
    );
}

/// The same database started again with the public base URL in the site's aliases: what was
/// stored under it is merged into the site's identity (the newest snapshot of each PR wins), so
/// #6 is listed once and #2 stays merged; the warning is gone, the status page shows one
/// identity and its alias; a later delivery with links is stored under the site's identity.
async fn aliases_merge_what_was_split(app: &impl Served, server: &MockServer, p: &Payloads) {
    let site = site_server(server);
    let internal = key_on(&site);
    assert_eq!(
        repositories(app).await,
        [(internal.clone(), REPO.to_owned())]
    );
    assert_eq!(
        prs(app).await,
        [
            (internal.clone(), 2, "MERGED".to_owned()),
            (internal.clone(), 6, "OPEN".to_owned()),
        ]
    );
    assert_eq!(pending(app).await, [(REPO.to_owned(), 6)]);
    let section = servers_section(app).await;
    assert_eq!(
        server_rows(&section)
            .iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()))
            .collect::<Vec<_>>(),
        [(
            site.clone(),
            format!("site {} (aliases: example.com:7990)", server.uri()),
            "1".to_owned(),
            "1".to_owned()
        )],
        "{section}"
    );
    assert!(!section.contains("neither the site's url"), "{section}");
    let mut later = p.six.clone();
    later["date"] = json!("2021-11-25T09:00:00+0000");
    later["pullRequest"]["title"] = json!("Retitled");
    deliver(app, &later).await;
    assert_eq!(repositories(app).await, [(internal, REPO.to_owned())]);
    assert_eq!(pending(app).await, [(REPO.to_owned(), 6)]);
}

/// The second start (with the alias) on the same database merges what the first stored twice.
async fn a_split_server_merges_once_its_other_base_url_is_an_alias(on: On) {
    let Some(p) = payloads() else { return };
    let server = MockServer::start().await;
    let clock = clock();
    let settings = with_site(server.uri(), &[]);
    let Some(app) = spawn_on(on, "dcsplit", settings, clock.clock()).await else {
        return;
    };
    without_aliases_a_merged_pr_closes_under_every_key(&app, &server, &p).await;
    let again = app
        .again(with_site(server.uri(), &[PUBLIC]), clock.clock())
        .await;
    aliases_merge_what_was_split(&again, &server, &p).await;
}

// ---------------------------------------------------------------------------------------------
// The migration: what was stored before.

/// The version of the migration that merges identities; the database is built up to the one
/// before it.
const IDENTITY_MIGRATION: i64 = 20261205000000;

/// Rows a database written before issue 21 may hold (SQL both databases read): PRJ/my-repo
/// (repository 1) under `unknown` (#2 as opened, #3 only there, a snooze, a build, messages)
/// and under `example.com:7990` (#2 newer, approved by Bob); PRJ/other under `unknown` alone;
/// PRJ/two under `unknown` and two linked servers (which one is it? left alone).
const BEFORE: &str = "
INSERT INTO users (user_key, display_name) VALUES
    ('datacenter/unknown/user/1', 'Jane Citizen'),
    ('datacenter/unknown/user/7', NULL),
    ('datacenter/unknown/user/9', 'Nine'),
    ('datacenter/example.com:7990/user/1', NULL),
    ('datacenter/example.com:7990/user/7', 'Bob Reviewer');
INSERT INTO repositories (repository_key, full_name, named_on) VALUES
    ('datacenter/unknown/1', 'PRJ/my-repo', '2018-07-05T19:21:30.000000Z'),
    ('datacenter/example.com:7990/1', 'prj/MY-REPO', '2021-11-23T10:02:52.000000Z'),
    ('datacenter/unknown/2', 'PRJ/other', '2018-07-05T19:21:30.000000Z'),
    ('datacenter/unknown/3', 'PRJ/two', '2018-07-05T19:21:30.000000Z'),
    ('datacenter/a.example/3', 'PRJ/two', '2021-11-23T10:02:52.000000Z'),
    ('datacenter/b.example/3', 'PRJ/two', '2021-11-23T10:02:52.000000Z');
INSERT INTO pull_requests (repository_key, number, title, author, state, created_on,
                           updated_on, last_activity_on, approvals) VALUES
    ('datacenter/unknown/1', 2, 'added LICENSE', 'datacenter/unknown/user/1', 'OPEN',
     '2018-07-05T19:21:30.848000Z', '2018-07-05T19:21:30.848000Z',
     '2018-07-05T19:21:30.848000Z', 0),
    ('datacenter/unknown/1', 3, 'Only link-less', 'datacenter/unknown/user/1', 'OPEN',
     '2018-07-05T19:21:30.848000Z', '2018-07-05T19:21:30.848000Z',
     '2018-07-05T19:21:30.848000Z', 0),
    ('datacenter/example.com:7990/1', 2, 'added LICENSE (newer)',
     'datacenter/example.com:7990/user/1', 'OPEN', '2018-07-05T19:21:30.848000Z',
     '2021-11-23T10:02:52.258000Z', '2021-11-23T10:02:52.258000Z', 1),
    ('datacenter/unknown/2', 1, 'Other', 'datacenter/unknown/user/9', 'OPEN',
     '2018-07-05T19:21:30.848000Z', '2018-07-05T19:21:30.848000Z',
     '2018-07-05T19:21:30.848000Z', 0),
    ('datacenter/unknown/3', 1, 'Two', 'datacenter/unknown/user/9', 'OPEN',
     '2018-07-05T19:21:30.848000Z', '2018-07-05T19:21:30.848000Z',
     '2018-07-05T19:21:30.848000Z', 0);
INSERT INTO reviews (repository_key, number, user_key, role, state, snapshot_on) VALUES
    ('datacenter/unknown/1', 2, 'datacenter/unknown/user/7', 'REVIEWER', 'none',
     '2018-07-05T19:21:30.848000Z'),
    ('datacenter/unknown/1', 3, 'datacenter/unknown/user/7', 'REVIEWER', 'changes_requested',
     '2018-07-05T19:21:30.848000Z'),
    ('datacenter/example.com:7990/1', 2, 'datacenter/example.com:7990/user/7', 'REVIEWER',
     'approved', '2021-11-23T10:02:52.258000Z');
INSERT INTO commit_statuses (commit_hash, key, repository_key, state, updated_on) VALUES
    ('208b0a5c05eddadad01f2aed8802fe0c3b3eaf5e', 'ci', 'datacenter/unknown/1', 'FAILED',
     '2018-07-05T19:30:00.000000Z');
INSERT INTO reconciled_commits (repository_key, commit_hash, checked_on) VALUES
    ('datacenter/unknown/1', '208b0a5c05eddadad01f2aed8802fe0c3b3eaf5e',
     '2018-07-05T19:30:00.000000Z');
INSERT INTO outbox (room, kind, repository_key, number, events, state, created_at, not_before)
VALUES
    ('dc', 'pull_request', 'datacenter/unknown/1', 2, 'opened', 'pending', 't1', 't1'),
    ('dc', 'pull_request', 'datacenter/example.com:7990/1', 2, 'approvals', 'pending', 't2', 't2'),
    ('dc', 'pull_request', 'datacenter/unknown/1', 3, 'opened', 'sent', 't0', 't0');
INSERT INTO snoozes (user_key, repository_key, number, until, created_at, reviewers, approvers)
VALUES ('datacenter/unknown/user/7', 'datacenter/unknown/1', 3, '2026-12-01T00:00:00.000000Z',
        't', '[\"datacenter/unknown/user/7\"]', '[]');
";

/// What every table holds after the migration, each as rows of text.
const AFTER: &[(&str, &[&str])] = &[
    (
        "SELECT repository_key || ' ' || full_name FROM repositories ORDER BY 1",
        &[
            "datacenter/a.example/3 PRJ/two",
            "datacenter/b.example/3 PRJ/two",
            // The name shown last wins.
            "datacenter/example.com:7990/1 prj/MY-REPO",
            "datacenter/unknown/2 PRJ/other",
            "datacenter/unknown/3 PRJ/two",
        ],
    ),
    (
        "SELECT repository_key || ' #' || CAST(number AS TEXT) || ' ' || title || ' by ' || author
           FROM pull_requests ORDER BY repository_key, number",
        &[
            // The newest snapshot wins; #3 moves.
            "datacenter/example.com:7990/1 #2 added LICENSE (newer) by datacenter/example.com:7990/user/1",
            "datacenter/example.com:7990/1 #3 Only link-less by datacenter/example.com:7990/user/1",
            "datacenter/unknown/2 #1 Other by datacenter/unknown/user/9",
            "datacenter/unknown/3 #1 Two by datacenter/unknown/user/9",
        ],
    ),
    (
        "SELECT repository_key || ' #' || CAST(number AS TEXT) || ' ' || user_key || ' ' || state
           FROM reviews ORDER BY repository_key, number",
        &[
            "datacenter/example.com:7990/1 #2 datacenter/example.com:7990/user/7 approved",
            "datacenter/example.com:7990/1 #3 datacenter/example.com:7990/user/7 changes_requested",
        ],
    ),
    (
        "SELECT user_key || ' ' || coalesce(display_name, '-') FROM users ORDER BY 1",
        &[
            "datacenter/example.com:7990/user/1 Jane Citizen",
            "datacenter/example.com:7990/user/7 Bob Reviewer",
            "datacenter/unknown/user/9 Nine",
        ],
    ),
    (
        "SELECT repository_key || ' ' || state FROM commit_statuses",
        &["datacenter/example.com:7990/1 FAILED"],
    ),
    (
        "SELECT repository_key || ' ' || checked_on FROM reconciled_commits",
        &["datacenter/example.com:7990/1 2018-07-05T19:30:00.000000Z"],
    ),
    (
        // One waiting message for #2 (the other's events joined it); history moves along.
        "SELECT repository_key || ' #' || CAST(number AS TEXT) || ' ' || events || ' ' || state
           FROM outbox ORDER BY id",
        &[
            "datacenter/example.com:7990/1 #2 approvals,opened pending",
            "datacenter/example.com:7990/1 #3 opened sent",
        ],
    ),
    (
        "SELECT user_key || ' ' || repository_key || ' #' || CAST(number AS TEXT) || ' '
                || reviewers FROM snoozes",
        &[
            "datacenter/example.com:7990/user/7 datacenter/example.com:7990/1 #3 [\"datacenter/example.com:7990/user/7\"]",
        ],
    ),
    (
        "SELECT repository || ' #' || CAST(number AS TEXT) FROM pending_reviews
          ORDER BY repository, number",
        &[
            "PRJ/other #1",
            "PRJ/two #1",
            "prj/MY-REPO #2",
            "prj/MY-REPO #3",
        ],
    ),
];

/// A database (SQLite or PostgreSQL) written before issue 21, with repositories stored under
/// `unknown` and under the identity their links named after an upgrade: the migration merges the
/// ones the data tells (same id, same name, one other identity) and leaves the rest.
async fn the_migration_merges_what_links_appearing_had_split(on: On) {
    let before = |migrator: &'static sqlx::migrate::Migrator| sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            migrator
                .iter()
                .filter(|m| m.version < IDENTITY_MIGRATION)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    // The same statements on each database; the pool's type differs.
    match on {
        On::Sqlite => {
            use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("before.db");
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(&path)
                        .create_if_missing(true)
                        .foreign_keys(true),
                )
                .await
                .unwrap();
            let mut before = before(&pr_reminder::store::MIGRATOR);
            before.set_locking(false);
            before.run(&pool).await.unwrap();
            sqlx::raw_sql(BEFORE).execute(&pool).await.unwrap();
            pr_reminder::store::MIGRATOR.run(&pool).await.unwrap();
            for (sql, want) in AFTER {
                let got: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
                assert_eq!(got, *want, "{sql}");
            }
            // SQLite checks foreign keys only when asked (PostgreSQL on every statement).
            let violations: Vec<(String,)> =
                sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            assert!(violations.is_empty(), "{violations:?}");
        }
        On::Postgres => {
            let Some(url) = crate::postgres::fresh_database("dcmigration").await else {
                return;
            };
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            before(&pr_reminder::store::POSTGRES_MIGRATOR)
                .run(&pool)
                .await
                .unwrap();
            sqlx::raw_sql(BEFORE).execute(&pool).await.unwrap();
            pr_reminder::store::POSTGRES_MIGRATOR
                .run(&pool)
                .await
                .unwrap();
            for (sql, want) in AFTER {
                let got: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
                assert_eq!(got, *want, "{sql}");
            }
        }
    }
}
