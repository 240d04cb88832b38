//! Default reviewers (issue 23): a reconciliation pass reads who Bitbucket would add as
//! reviewers, and a PR with fewer requested reviewers than the approvals it needs owes its
//! review to them too: in `open_pull_requests.waiting_on` and in their `/reviews`. Against
//! loopback fakes of Cloud's `effective-default-reviewers` and Data Center's default-reviewers
//! `reviewers` resource (the contracts are cited in src/bitbucket/rest/cloud.rs and
//! datacenter.rs).

use pr_reminder::config::{Settings, UserMapping};
use pr_reminder::domain::Flavour;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::commands::{app_settings, hipchat, HIPCHAT_TOKEN};
use crate::helpers::{on_both, spawn_on, ManualClock, On, Served};
use crate::reconcile::{
    cloud_list, cloud_pr, cloud_statuses, dc_pages, dc_pr, reconcile, requests, reviewer, site,
    API_TOKEN, TOKEN,
};

on_both!(
    cloud_default_reviewers_owe_when_too_few_were_requested,
    datacenter_default_reviewers_are_resolved_for_the_prs_refs,
);

/// `app_settings` (HipChat commands, room backend for acme/*) with `site` and Carol's Cloud and
/// Data Center accounts mapped to `carol_r`.
fn settings(site: pr_reminder::config::Site) -> impl FnOnce(&mut Settings) {
    let base = app_settings();
    move |s: &mut Settings| {
        base(s);
        s.bitbucket = vec![site];
        s.notify.routes[0] = crate::helpers::digest_only_route(&["acme/*", "PRJ/*"], "backend");
        s.sweep.token = Some(pr_reminder::config::SecretToken(
            secrecy::SecretString::from(TOKEN.to_owned()),
        ));
        s.commands.users = vec![UserMapping {
            bitbucket: "{carol}".into(),
            hipchat: Some("carol_r".into()),
            slack: None,
            ..UserMapping::default()
        }];
    }
}

async fn waiting_on(app: &impl Served) -> Vec<(i64, String, Option<String>)> {
    app.query_rows("SELECT number, turn, waiting_on FROM open_pull_requests ORDER BY number")
        .await
}

/// The fake's requests for default reviewers so far.
async fn reads(server: &MockServer) -> usize {
    requests(server)
        .await
        .iter()
        .filter(|r| r.contains("default-reviewers"))
        .count()
}

/// The clock of these apps: after the fixtures' dates, a Thursday.
fn clock() -> ManualClock {
    ManualClock::frozen(
        chrono::DateTime::parse_from_rfc3339("2026-11-05T10:00:00Z")
            .unwrap()
            .into(),
    )
}

fn default_reviewer(uuid: &str, name: &str, kind: &str) -> Value {
    json!({"type": "default_reviewer_and_type", "reviewer_type": kind,
           "user": {"type": "user", "uuid": uuid, "display_name": name,
                    "account_id": format!("5570:{name}"), "nickname": name.to_lowercase()}})
}

/// acme/api: #1 with only Bob requested (two approvals needed), #2 with Bob and Dave requested.
/// The repository's effective default reviewers are Carol (repository), Bob and the author Ann
/// (project). #1 owes Bob and Carol (in name order in the view); #2 owes only its requested reviewers. A second pass that
/// finds the same answers writes nothing; once Carol approves #1 she owes nothing.
async fn cloud_default_reviewers_owe_when_too_few_were_requested(on: On) {
    let server = MockServer::start().await;
    let two = json!([
        reviewer("{bob}", json!(null)),
        reviewer("{dave}", json!(null))
    ]);
    cloud_list(
        &server,
        "acme/api",
        vec![
            cloud_pr(
                1,
                "aaaaaaaaaaaa",
                "2026-11-02T10:00:00+00:00",
                json!([reviewer("{bob}", json!(null))]),
            ),
            cloud_pr(2, "bbbbbbbbbbbb", "2026-11-02T10:00:00+00:00", two),
        ],
    )
    .await;
    cloud_statuses(&server, "acme/api", "aaaaaaaaaaaa", vec![]).await;
    cloud_statuses(&server, "acme/api", "bbbbbbbbbbbb", vec![]).await;
    Mock::given(method("GET"))
        .and(path(
            "/2.0/repositories/acme/api/effective-default-reviewers",
        ))
        .and(query_param("pagelen", "100"))
        .and(header(
            "Authorization",
            format!("Bearer {API_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "pagelen": 100, "size": 3, "page": 1,
            "values": [
                default_reviewer("{carol}", "Carol", "repository"),
                default_reviewer("{bob}", "Bob", "project"),
                default_reviewer("{ann}", "Ann", "project"),
            ]
        })))
        .mount(&server)
        .await;
    let site = site(
        Flavour::Cloud,
        format!("{}/2.0", server.uri()),
        &["acme/api"],
    );
    let clock = clock();
    let Some(app) = spawn_on(on, "defaults", settings(site), clock.clock()).await else {
        return;
    };
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        waiting_on(&app).await,
        vec![
            (1, "reviewers".into(), Some("Bob, Carol".into())),
            (2, "reviewers".into(), Some("Bob, {dave}".into())),
        ],
        "Bob's name comes from the default reviewers' answer, for every PR"
    );
    let stored: Vec<(i64, String, i64)> = app
        .query_rows(
            "SELECT number, user_key, position FROM default_reviewers ORDER BY number, position",
        )
        .await;
    assert_eq!(
        stored,
        vec![
            (1, "{carol}".into(), 0),
            (1, "{bob}".into(), 1),
            (1, "{ann}".into(), 2)
        ]
    );
    let asked = requests(&server).await;
    assert_eq!(
        asked
            .iter()
            .filter(|r| r.contains("effective-default-reviewers"))
            .count(),
        1,
        "once per repository and pass: {asked:?}"
    );

    // Carol's /reviews lists #1 (she is owed as a default reviewer), not #2.
    let (status, answer) = hipchat(&app, HIPCHAT_TOKEN, "/reviews", "carol_r", "backend").await;
    assert_eq!(status, 200, "{answer}");
    let text = answer["message"].as_str().unwrap();
    assert!(
        text.starts_with("<b>1 pull request waiting for your review</b>")
            && text.contains("/pull-requests/1\"")
            && text.contains("waiting for Bob, @carol_r"),
        "{text}"
    );

    // Another pass within the hour, nothing changed: no request for default reviewers.
    let checked: Vec<(String,)> = app
        .query_rows("SELECT DISTINCT checked_on FROM default_reviewers")
        .await;
    clock.advance(std::time::Duration::from_secs(30 * 60));
    let (status, _) = reconcile(&app).await;
    assert_eq!(status, 200);
    assert_eq!(reads(&server).await, 1, "read at most hourly");

    // A PR that came by webhook (#3, Ann's, nobody requested) is read at the next pass although
    // the list shows it unchanged.
    let mut pr3 = cloud_pr(3, "cccccccccccc", "2026-11-04T10:00:00+00:00", json!([]));
    pr3["created_on"] = json!("2026-11-04T09:00:00+00:00");
    let repository = json!({"full_name": "acme/api", "uuid": "{acme-api}", "name": "api",
                            "type": "repository"});
    let mut body = json!({"pullrequest": pr3.clone(), "repository": repository,
                          "actor": {"uuid": "{ann}", "display_name": "Ann"}});
    body["pullrequest"]["destination"]["repository"] = body["repository"].clone();
    app.processed("pullrequest:created", &body).await;
    server.reset().await;
    let two = json!([
        reviewer("{bob}", json!(null)),
        reviewer("{dave}", json!(null))
    ]);
    cloud_list(
        &server,
        "acme/api",
        vec![
            cloud_pr(
                1,
                "aaaaaaaaaaaa",
                "2026-11-02T10:00:00+00:00",
                json!([reviewer("{bob}", json!(null))]),
            ),
            cloud_pr(2, "bbbbbbbbbbbb", "2026-11-02T10:00:00+00:00", two),
            pr3,
        ],
    )
    .await;
    cloud_statuses(&server, "acme/api", "cccccccccccc", vec![]).await;
    Mock::given(method("GET"))
        .and(path(
            "/2.0/repositories/acme/api/effective-default-reviewers",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [
                default_reviewer("{carol}", "Carol", "repository"),
                default_reviewer("{bob}", "Bob", "project"),
                default_reviewer("{ann}", "Ann", "project"),
            ]
        })))
        .mount(&server)
        .await;
    clock.advance(std::time::Duration::from_secs(60));
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["repositories"][0]["updated"], 0,
        "#3 as the webhook left it: {report}"
    );
    assert_eq!(reads(&server).await, 1, "#3 was never read");
    assert_eq!(
        waiting_on(&app).await[2],
        (3, "reviewers".into(), Some("Bob, Carol".into()))
    );

    // Over an hour later every PR is read again; the same answers rewrite nothing.
    clock.advance(std::time::Duration::from_secs(61 * 60));
    let (status, _) = reconcile(&app).await;
    assert_eq!(status, 200);
    assert_eq!(reads(&server).await, 2);
    let again: Vec<(String,)> = app
        .query_rows("SELECT DISTINCT checked_on FROM default_reviewers WHERE number = 1")
        .await;
    assert_eq!(checked, again);

    // Carol approves #1 (a participant now): she owes nothing; Bob still does.
    server.reset().await;
    let approved = json!([
        reviewer("{bob}", json!(null)),
        {"user": {"uuid": "{carol}", "display_name": "Carol"}, "role": "PARTICIPANT",
         "approved": true, "state": "approved", "participated_on": "2026-11-03T10:00:00+00:00"}
    ]);
    cloud_list(
        &server,
        "acme/api",
        vec![
            cloud_pr(1, "aaaaaaaaaaaa", "2026-11-03T10:00:00+00:00", approved),
            cloud_pr(
                2,
                "bbbbbbbbbbbb",
                "2026-11-02T10:00:00+00:00",
                json!([
                    reviewer("{bob}", json!(null)),
                    reviewer("{dave}", json!(null))
                ]),
            ),
        ],
    )
    .await;
    cloud_statuses(&server, "acme/api", "aaaaaaaaaaaa", vec![]).await;
    cloud_statuses(&server, "acme/api", "bbbbbbbbbbbb", vec![]).await;
    Mock::given(method("GET"))
        .and(path(
            "/2.0/repositories/acme/api/effective-default-reviewers",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [default_reviewer("{carol}", "Carol", "repository")]
        })))
        .mount(&server)
        .await;
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        waiting_on(&app).await[0],
        (1, "reviewers".into(), Some("{bob}".into())),
        "the newest snapshot named Bob by his uuid"
    );
}

/// PRJ/api's PR #3 (Bob requested, NEEDS_WORK withdrawn: no verdict) with its refs: the server
/// resolves its default reviewers for exactly that pair of refs (Dave), who owe with Bob.
/// PRs whose answers lack the refs' ids are not asked about. A refused request (403) keeps what
/// is stored and fails nothing.
async fn datacenter_default_reviewers_are_resolved_for_the_prs_refs(on: On) {
    let server = MockServer::start().await;
    let mut pr = dc_pr(&server, 3, "c0ffee", 1_700_000_100_000, "UNAPPROVED");
    pr["fromRef"]["id"] = json!("refs/heads/feature");
    pr["fromRef"]["repository"]["id"] = json!(43); // a fork
    pr["toRef"]["id"] = json!("refs/heads/main");
    // #4's answer lacks its refs' ids: it is not asked about.
    let without_refs = dc_pr(&server, 4, "c0ffee", 1_700_000_100_000, "UNAPPROVED");
    dc_pages(&server, vec![vec![pr.clone(), without_refs.clone()]]).await;
    Mock::given(method("GET"))
        .and(path(
            "/rest/default-reviewers/1.0/projects/PRJ/repos/api/reviewers",
        ))
        .and(query_param("sourceRepoId", "43"))
        .and(query_param("targetRepoId", "42"))
        .and(query_param("sourceRefId", "refs/heads/feature"))
        .and(query_param("targetRefId", "refs/heads/main"))
        .and(header(
            "Authorization",
            format!("Bearer {API_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"name": "dave", "emailAddress": "dave@example.com", "id": 9,
             "displayName": "Dave", "active": true, "slug": "dave", "type": "NORMAL"},
            {"name": "bob", "emailAddress": "bob@example.com", "id": 7,
             "displayName": "Bob", "active": true, "slug": "bob", "type": "NORMAL"},
            {"name": "dave", "emailAddress": "dave@example.com", "id": 9,
             "displayName": "Dave", "active": true, "slug": "dave", "type": "NORMAL"}
        ])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex("/builds$|/build-status/"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"values": [], "isLastPage": true})),
        )
        .mount(&server)
        .await;
    let site = site(Flavour::DataCenter, server.uri(), &["PRJ/api"]);
    let clock = clock();
    let Some(app) = spawn_on(on, "defaultsdc", settings(site), clock.clock()).await else {
        return;
    };
    let (status, report) = reconcile(&app).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        waiting_on(&app).await,
        vec![
            (3, "reviewers".into(), Some("Bob, Dave".into())),
            (4, "reviewers".into(), Some("Bob".into())),
        ],
        "Dave listed twice is stored once"
    );
    assert_eq!(reads(&server).await, 1, "only #3 is asked about");
    let host = server.address().to_string();
    let stored: Vec<(String, Option<String>)> = app
        .query_rows(
            "SELECT d.user_key, u.email FROM default_reviewers d
               JOIN users u ON u.user_key = d.user_key ORDER BY d.position",
        )
        .await;
    assert_eq!(
        stored,
        vec![
            (
                format!("datacenter/{host}/user/9"),
                Some("dave@example.com".into())
            ),
            (
                format!("datacenter/{host}/user/7"),
                Some("bob@example.com".into())
            ),
        ]
    );

    // Over an hour later the token may no longer read them: the pass goes through and Dave
    // stays; a refusal is asked again at the next hourly refresh, not at every pass.
    clock.advance(std::time::Duration::from_secs(61 * 60));
    server.reset().await;
    dc_pages(&server, vec![vec![pr, without_refs]]).await;
    Mock::given(method("GET"))
        .and(path(
            "/rest/default-reviewers/1.0/projects/PRJ/repos/api/reviewers",
        ))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"errors": [
            {"message": "You are not permitted to access this resource"}]})))
        .mount(&server)
        .await;
    for minutes in [1, 61] {
        let (status, report) = reconcile(&app).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(reads(&server).await, 1);
        clock.advance(std::time::Duration::from_secs(minutes * 60));
    }
    let (status, _) = reconcile(&app).await;
    assert_eq!(status, 200);
    assert_eq!(reads(&server).await, 2, "asked again an hour later");
    assert_eq!(
        waiting_on(&app).await,
        vec![
            (3, "reviewers".into(), Some("Bob, Dave".into())),
            (4, "reviewers".into(), Some("Bob".into())),
        ]
    );
}
