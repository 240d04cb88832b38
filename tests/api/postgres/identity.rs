//! One Data Center server, one identity, on PostgreSQL: the scenarios of `identity`.

use super::*;
use crate::identity::{datacenter_repository_events_are_datacenter, tokens};

/// `identity::datacenter_repository_events_are_recorded_shown_and_counted_as_datacenter` on
/// PostgreSQL.
#[tokio::test]
async fn datacenter_repository_events_are_recorded_shown_and_counted_as_datacenter() {
    let Some(app) = spawn_pg("dcflavour", tokens, Clock::system()).await else {
        return;
    };
    datacenter_repository_events_are_datacenter(&app).await;
}
