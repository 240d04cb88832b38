pub mod message;
pub mod outbox;
pub mod routing;
pub mod sink;
