pub mod health;
pub mod sweep;
pub mod webhook;
