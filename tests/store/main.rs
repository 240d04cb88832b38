//! The batch writer (`store::writer`) on its own: domain values in through `Writer::submit`,
//! state read back. No HTTP and no parser: every change is built by hand (`build`), so each test
//! says exactly which snapshot, name or build it is about.
//!
//! Only `harness` opens the database and only `reads` reads it, so the same tests can run against
//! another database by giving those two modules a sibling.

mod build;
mod harness;
mod reads;

mod announcing;
mod builds;
mod deliveries;
mod renames;
mod snapshots;
mod snoozes;
