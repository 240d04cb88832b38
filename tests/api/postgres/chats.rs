//! Chat answers on PostgreSQL: what the outbox records of each chat's answer.

use super::*;
use crate::chats::{a_2xx_that_is_not_the_chats_yes, two_hundred_fakes, two_hundred_settings};

/// `chats::a_2xx_that_is_not_the_chats_yes_is_retried_then_failed` on PostgreSQL.
#[tokio::test]
async fn a_2xx_that_is_not_the_chats_yes_is_retried_then_failed() {
    let fakes = two_hundred_fakes().await;
    let Some(app) = spawn_pg("twohundred", two_hundred_settings(&fakes), Clock::system()).await
    else {
        return;
    };
    a_2xx_that_is_not_the_chats_yes(&app, &fakes).await;
}
