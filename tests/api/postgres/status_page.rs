//! `GET /status`'s room senders, a table only PostgreSQL's page has: there each room's messages
//! are sent by whichever replica holds the room's lease (`room_leases`, tied to a database
//! session). On SQLite one process sends every room and the page has no such table. The rest of
//! the page is specified once for both databases in `crate::status`.

use super::*;
use crate::helpers::{App, On};
use crate::status::{between, seeded_app, STATUS_TOKEN};

/// On PostgreSQL the health tables say which replica sends each room's messages and whether
/// its database session is still there (a killed replica's lease shows as gone until another
/// takes the room). SQLite's page has no such table: one process sends every room.
#[tokio::test]
async fn the_page_names_the_replica_sending_each_room() {
    let Some((app, _fake)) = seeded_app(On::Postgres).await else {
        return;
    };
    assert!(matches!(app, App::Postgres(_)));
    // Each room's sender takes its lease as it starts.
    app.wait_for_count("SELECT count(*) FROM room_leases", 2)
        .await;
    app.execute(
        "INSERT INTO room_leases (room, holder, expires_at, backend_pid)
         VALUES ('retired', 'old-host/1/1', now() + interval '1 minute', 0)",
    )
    .await;

    let (status, html) = app.get_text("/status", Some(STATUS_TOKEN)).await;
    assert_eq!(status, 200, "{html}");
    let table = between(&html, "<table id=\"leases\">", "</table>");
    let rows: Vec<&str> = table.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 3, "{table}");
    // Readable: host, process id, start (not the lease's raw `host/pid/epoch-ms`).
    let this_process = format!(", process {}, started 20", std::process::id());
    for (row, room) in rows.iter().zip(["payments", "retired", "web"]) {
        assert!(row.starts_with(&format!("<td>{room}</td>")), "{row}");
    }
    for row in [rows[0], rows[2]] {
        assert!(
            row.contains(&this_process) && row.contains(">connected<"),
            "{row}"
        );
    }
    assert!(
        rows[1].contains("<td>old-host, process 1, started 1970-01-01 00:00 UTC</td>")
            && rows[1].contains(">gone: another replica"),
        "{}",
        rows[1]
    );
}
