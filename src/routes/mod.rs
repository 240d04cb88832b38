pub mod health;
pub mod webhook;
