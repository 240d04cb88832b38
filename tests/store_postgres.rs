//! The store tests of `tests/store/` against PostgreSQL: the same test modules, with the
//! PostgreSQL siblings of the harness (a fresh database per test on `PR_REMINDER_TEST_POSTGRES`)
//! and the same reads. Without a server they say so and pass over it; under `CI=true` they fail.

#[path = "common/postgres.rs"]
mod postgres;

#[path = "store/build.rs"]
mod build;
#[path = "store/harness_postgres.rs"]
mod harness;
#[path = "store/harness.rs"]
#[allow(dead_code)]
mod harness_sqlite;
#[path = "store/reads.rs"]
mod reads;

#[path = "store/announcing.rs"]
mod announcing;
#[path = "store/builds.rs"]
mod builds;
#[path = "store/deliveries.rs"]
mod deliveries;
#[path = "store/renames.rs"]
mod renames;
#[path = "store/snapshots.rs"]
mod snapshots;
#[path = "store/snoozes.rs"]
mod snoozes;

#[path = "store/postgres_only.rs"]
mod postgres_only;
