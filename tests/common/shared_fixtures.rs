//! Where the shared real-world Bitbucket payloads are, for every test binary.

use std::io::Write;
use std::path::PathBuf;

/// `../shared/fixtures/bitbucket` (or `PR_REMINDER_SHARED_FIXTURES`). A user's clone has no
/// `../shared`: the tests that need it then say so and pass over it; under `CI=true` a missing
/// folder is a failure.
///
/// The note is written straight to the process's stderr, which cargo's output capture does not
/// swallow, so a skipped test is visible as skipped.
pub fn shared_fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("PR_REMINDER_SHARED_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/bitbucket")
        });
    if dir.join("index.json").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the shared Bitbucket fixtures are missing at {}",
            dir.display()
        );
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED: shared Bitbucket fixtures not found at {}; the tests that need them pass over it",
        dir.display()
    );
    None
}
