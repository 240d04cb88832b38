//! Starting the binary (or a shell that starts it) the way an operator would: with nothing from
//! the test's own environment but `PATH`, and whatever moves the clock for the whole process
//! tree.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::process::Command;

/// Variables a test run may set to put every process it starts on one shifted clock and zone:
/// libfaketime's (`LD_PRELOAD` loads it, `FAKETIME` is the offset, `FAKETIME_*` tune it;
/// `.ci/run` runs the API tests a second time under `faketime`) and the local time zone.
const CLOCK_VARIABLES: &[&str] = &["LD_PRELOAD", "FAKETIME", "TZ"];

/// `program` with a clean environment: `PATH`, and the clock variables of the test's own process
/// (`LD_PRELOAD`, `FAKETIME`, `FAKETIME_*`, `TZ`) so that a child sees the same clock as the
/// test and the app it started. Nothing else leaks in (no `PR_REMINDER_*`, no `RUST_LOG`).
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in std::env::vars_os() {
        let keep = name
            .to_str()
            .is_some_and(|name| CLOCK_VARIABLES.contains(&name) || name.starts_with("FAKETIME_"));
        if keep {
            cmd.env(name, value);
        }
    }
    cmd
}
