//! One Data Center server, one identity, on PostgreSQL: the scenarios of `identity`.

use super::*;
use crate::identity::{
    aliases_merge_what_was_split, clock, datacenter_repository_events_are_datacenter,
    links_appearing_after_an_upgrade, one_site_owns_link_less_deliveries, payloads, room, tokens,
    with_site, without_aliases_a_merged_pr_closes_under_every_key, PUBLIC,
};
use wiremock::MockServer;

/// `identity::datacenter_repository_events_are_recorded_shown_and_counted_as_datacenter` on
/// PostgreSQL.
#[tokio::test]
async fn datacenter_repository_events_are_recorded_shown_and_counted_as_datacenter() {
    let Some(app) = spawn_pg("dcflavour", tokens, Clock::system()).await else {
        return;
    };
    datacenter_repository_events_are_datacenter(&app).await;
}

/// `identity::links_appearing_after_an_upgrade_are_the_same_repository` on PostgreSQL.
#[tokio::test]
async fn links_appearing_after_an_upgrade_are_the_same_repository() {
    let Some(p) = payloads() else { return };
    let Some(app) = spawn_pg("dclinks", room, clock().clock()).await else {
        return;
    };
    links_appearing_after_an_upgrade(&app, &p).await;
}

/// `identity::one_site_owns_link_less_deliveries_and_warns_of_its_other_base_url` on
/// PostgreSQL.
#[tokio::test]
async fn one_site_owns_link_less_deliveries_and_warns_of_its_other_base_url() {
    let Some(p) = payloads() else { return };
    let server = MockServer::start().await;
    let Some(app) = spawn_pg("dconesite", with_site(server.uri(), &[]), clock().clock()).await
    else {
        return;
    };
    one_site_owns_link_less_deliveries(&app, &server, &p).await;
}

/// `identity::a_split_server_merges_once_its_other_base_url_is_an_alias` on PostgreSQL: the
/// second start (with the alias) on the same database merges what the first stored twice.
#[tokio::test]
async fn a_split_server_merges_once_its_other_base_url_is_an_alias() {
    let Some(p) = payloads() else { return };
    let server = MockServer::start().await;
    let clock = clock();
    let Some(app) = spawn_pg("dcsplit", with_site(server.uri(), &[]), clock.clock()).await else {
        return;
    };
    without_aliases_a_merged_pr_closes_under_every_key(&app, &server, &p).await;
    let again = spawn_pg_at(
        app.url.clone(),
        with_site(server.uri(), &[PUBLIC]),
        clock.clock(),
    )
    .await;
    aliases_merge_what_was_split(&again, &server, &p).await;
}

/// `identity::the_migration_merges_what_links_appearing_had_split` on PostgreSQL.
#[tokio::test]
async fn the_migration_merges_what_links_appearing_had_split() {
    use crate::identity::{AFTER, BEFORE, IDENTITY_MIGRATION};
    let Some(url) = pg::fresh_database("dcmigration").await else {
        return;
    };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let before = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            pr_reminder::store::POSTGRES_MIGRATOR
                .iter()
                .filter(|m| m.version < IDENTITY_MIGRATION)
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(&pool).await.unwrap();
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
