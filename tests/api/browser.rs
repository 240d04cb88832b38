//! The status page in a real browser: headless Chromium driven through WebDriver (chromedriver,
//! `fantoccini`), logging in with HTTP Basic auth the way a person does (the 401 challenge, then
//! the credentials), on a desktop and on a phone-sized window. Screenshots land in the target
//! folder (`status-page.png`, `status-page-phone.png`).
//!
//! `.ci/run` installs Debian's `chromium` and `chromium-driver`. Under `CI=true` a missing
//! browser is a failure; elsewhere the test says so on stderr and passes over it.

use std::io::Write;
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use futures_util::FutureExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::status::{seeded_app, STATUS_TOKEN};

/// chromedriver and chromium on PATH, or why not.
fn browser() -> Option<PathBuf> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    let driver = find("chromedriver");
    let chromium = find("chromium").or_else(|| find("chromium-browser"));
    if let (Some(driver), Some(_)) = (&driver, &chromium) {
        return Some(driver.clone());
    }
    let missing = format!(
        "chromedriver {} and chromium {} (Debian: apt-get install chromium chromium-driver)",
        if driver.is_some() { "found" } else { "MISSING" },
        if chromium.is_some() {
            "found"
        } else {
            "MISSING"
        },
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but the browser test cannot run: {missing}");
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED: the real-browser status page test: {missing}"
    );
    None
}

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(path: &PathBuf) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver { child, url };
    let started = Instant::now();
    while reqwest::get(format!("{}/status", driver.url))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not answer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&target).unwrap();
    target.join(name)
}

/// A headless Chromium session through `driver`, with a tall desktop window.
async fn session(driver: &Driver) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                        "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1900"]}),
    );
    // chromedriver is on loopback: plain HTTP, no TLS stack.
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

#[tokio::test]
async fn a_browser_logs_in_with_basic_auth_and_sees_the_rows_and_the_chart() {
    let Some(driver_path) = browser() else {
        return;
    };
    let Some((app, _fake)) = seeded_app(crate::helpers::On::Sqlite).await else {
        unreachable!("SQLite always runs");
    };
    let driver = start_driver(&driver_path).await;
    let client = session(&driver).await;
    // The session is closed even when an assertion fails, so no browser outlives the test.
    let result = AssertUnwindSafe(async {
        let page = format!("{}/status", crate::helpers::Served::address(&app));

        // Without credentials the browser gets the 401 challenge (a login prompt), not the page.
        client.goto(&page).await?;
        assert_ne!(client.title().await?, "pr-reminder status");
        assert!(client.find_all(Locator::Css("tr.pr")).await?.is_empty());

        // Basic auth: the browser answers the challenge with the credentials of the URL.
        let port = page.trim_start_matches("http://127.0.0.1:");
        let with_login = format!("http://status:{STATUS_TOKEN}@127.0.0.1:{port}");
        client.goto(&with_login).await?;
        assert_eq!(client.title().await?, "pr-reminder status");

        // Every PR row is there and visible: 6 in payments, 1 in web.
        let rows = client.find_all(Locator::Css("tr.pr")).await?;
        assert_eq!(rows.len(), 7);
        for row in &rows {
            assert!(row.is_displayed().await?, "{:?}", row.text().await?);
        }
        let first = rows[0].text().await?;
        assert!(
            first.contains("#2 <script>alert(1)</script> & \"co\""),
            "the hostile title shows as text: {first}"
        );
        let late = client.find(Locator::Css("td.age.late")).await?;
        assert_eq!(late.text().await?, "5d");

        // The chart is drawn and visible, with one bar group per repository.
        let chart = client.find(Locator::Id("age-chart")).await?;
        assert!(chart.is_displayed().await?);
        let bars = client.find_all(Locator::Css("#age-chart g.bar")).await?;
        assert_eq!(bars.len(), 2);
        let rects = client
            .find_all(Locator::Css("#age-chart g.bar rect"))
            .await?;
        assert_eq!(rects.len(), 4, "payments: 3 buckets, web: 1");
        for rect in &rects {
            assert!(rect.is_displayed().await?);
        }

        // Words wrap whole: on a narrow desktop window (still the table layout) no word of a
        // PR row (a word as Unicode segments text: `alert` in `<script>alert(1)`) is split
        // across two lines.
        client.set_window_size(760, 1900).await?;
        let split = client
            .execute(
                "const words = new Intl.Segmenter('en', {granularity: 'word'});
                 const split = [];
                 for (const td of document.querySelectorAll('tr.pr td')) {
                   const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
                   for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                     for (const w of words.segment(node.textContent)) {
                       if (!w.isWordLike) continue;
                       const range = document.createRange();
                       range.setStart(node, w.index);
                       range.setEnd(node, w.index + w.segment.length);
                       const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                       if (tops.size > 1) split.push(w.segment);
                     }
                   }
                 }
                 return split;",
                vec![],
            )
            .await?;
        assert_eq!(split, json!([]), "words split across lines");
        client.set_window_size(1280, 1900).await?;

        let desktop = client.screenshot().await?;
        assert!(desktop.starts_with(b"\x89PNG"), "a PNG");
        let path = screenshot_path("status-page.png");
        std::fs::write(&path, &desktop).unwrap();

        // On a phone: each row is a block, still visible, and no table is wider than the screen.
        client.set_window_size(390, 844).await?;
        let rows = client.find_all(Locator::Css("tr.pr")).await?;
        assert!(rows[0].is_displayed().await?);
        let widths = client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await?;
        let (page_width, window) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert!(
            page_width <= window,
            "{page_width} px wide in a {window} px window"
        );
        let phone = client.screenshot().await?;
        std::fs::write(screenshot_path("status-page-phone.png"), &phone).unwrap();
        let _ = writeln!(
            std::io::stderr().lock(),
            "status page screenshots: {} and status-page-phone.png beside it",
            path.display()
        );
        Ok::<(), fantoccini::error::CmdError>(())
    })
    .catch_unwind()
    .await;
    end_session(client, result).await;
}

/// Issue 26: the webhook coverage a reconciliation pass recorded, as a person sees it: one row
/// per repository with what covers it and its last delivery, "webhook silent?" in red, readable
/// on a phone.
#[tokio::test]
async fn a_browser_sees_the_webhook_coverage_per_repository() {
    let Some(driver_path) = browser() else {
        return;
    };
    let (app, fake) = crate::drift::drift_app().await;
    let driver = start_driver(&driver_path).await;
    let client = session(&driver).await;
    let result = AssertUnwindSafe(async {
        let port = app.address.trim_start_matches("http://127.0.0.1:");
        let token = crate::drift::STATUS_TOKEN;
        client
            .goto(&format!("http://status:{token}@127.0.0.1:{port}/status"))
            .await?;
        assert_eq!(client.title().await?, "pr-reminder status");
        let rows = client
            .find_all(Locator::Css("#webhooks tr.webhook"))
            .await?;
        let mut seen = Vec::new();
        for row in &rows {
            assert!(row.is_displayed().await?);
            let cells = row.find_all(Locator::Css("td")).await?;
            let mut texts = Vec::new();
            for cell in cells.iter().take(3) {
                texts.push(cell.text().await?.replace('\n', " | "));
            }
            seen.push(texts);
        }
        let site = |name: &str| format!("{name} | {}", fake.site(&[]).name());
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(
            seen[0],
            [
                site("acme/api"),
                "workspace hook".into(),
                "2026-12-01 09:00 UTC".into()
            ]
        );
        assert_eq!(
            seen[1],
            [
                site("beta/asleep"),
                "repository hook (inactive)".into(),
                "none".into()
            ]
        );
        assert_eq!(
            seen[2],
            [
                site("beta/bare"),
                "none".into(),
                "none | webhook silent? no delivery for 7 days while its pull requests changed"
                    .into()
            ]
        );
        assert_eq!(
            seen[3],
            [site("beta/hooked"), "repository hook".into(), "none".into()]
        );
        assert!(
            seen[4][1].starts_with(
                "unknown | no permission: the token needs to read the webhooks of workspace delta"
            ),
            "{:?}",
            seen[4]
        );
        // Silent is red; covered is green.
        let silent = client.find(Locator::Css("#webhooks .silent")).await?;
        assert_eq!(silent.css_value("color").await?, "rgba(198, 40, 40, 1)");

        // On a phone the coverage table is blocks too, no wider than the screen.
        client.set_window_size(390, 844).await?;
        let widths = client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await?;
        let (page_width, window) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert!(
            page_width <= window,
            "{page_width} px wide in a {window} px window"
        );
        assert!(rows[4].is_displayed().await?);
        Ok::<(), fantoccini::error::CmdError>(())
    })
    .catch_unwind()
    .await;
    end_session(client, result).await;
}

/// Issue 28: the review-flow page in a real browser, logged in with Basic auth: its three charts
/// are drawn (inline SVG with their bars and lines visible), and on a phone the page is no wider
/// than the screen with the charts scaled to it. Screenshots: `review-flow.png` (the README's
/// `docs/review-flow.png` is a copy) and `review-flow-phone.png` in the target folder.
#[tokio::test]
async fn a_browser_sees_the_review_flow_charts_on_a_phone() {
    let Some(driver_path) = browser() else {
        return;
    };
    let fake = crate::sweep::fake_room().await;
    let clock = crate::helpers::ManualClock::frozen(crate::review_flow::before_the_report());
    let Some(app) = crate::review_flow::flow_app(crate::helpers::On::Sqlite, &fake, &clock).await
    else {
        unreachable!("SQLite always runs");
    };
    let driver = start_driver(&driver_path).await;
    let client = session(&driver).await;
    let result = AssertUnwindSafe(async {
        let port = crate::helpers::Served::address(&app).trim_start_matches("http://127.0.0.1:");
        let token = crate::review_flow::STATUS_TOKEN;
        client
            .goto(&format!(
                "http://status:{token}@127.0.0.1:{port}/status/review-flow?since=5w"
            ))
            .await?;
        assert_eq!(client.title().await?, "pr-reminder review flow");

        // Each chart is an SVG that is shown, with its marks: a dot per week that had a median,
        // a bar per wait bucket, a bar per reviewer and chart.
        for id in ["trend-chart", "waiting-chart", "reviewers-chart"] {
            let svg = client.find(Locator::Css(&format!("#{id} svg"))).await?;
            assert!(svg.is_displayed().await?, "{id}");
            let (_, _, width, height) = svg.rectangle().await?;
            assert!(width > 300.0 && height > 100.0, "{id}: {width} x {height}");
        }
        // The weeks of 2 Nov and 30 Nov are not consecutive: dots, and no line across the gap.
        for colour in ["#1F6FEB", "#2E7D32"] {
            let lines = client
                .find_all(Locator::Css(&format!(
                    "#trend-chart svg polyline[stroke=\"{colour}\"]"
                )))
                .await?;
            assert_eq!(lines.len(), 0, "{colour}");
        }
        let dots = client
            .find_all(Locator::Css("#trend-chart svg circle"))
            .await?;
        assert_eq!(
            dots.len(),
            4,
            "first review and merge, in the weeks of 2 Nov and 30 Nov"
        );
        let bars = client
            .find_all(Locator::Css("#waiting-chart svg rect[fill=\"#F9A825\"]"))
            .await?;
        // Six buckets, five empty: the one bar of #3 (2-3 days) has a height.
        assert_eq!(bars.len(), 6);
        let mut tall = 0;
        for bar in &bars {
            if bar.rectangle().await?.3 > 1.0 {
                tall += 1;
            }
        }
        assert_eq!(tall, 1, "#3 alone waits");
        let reviewer_bars = client
            .find_all(Locator::Css("#reviewers-chart svg rect[fill=\"#1F6FEB\"]"))
            .await?;
        assert_eq!(reviewer_bars.len(), 2, "Bob and Carol");
        let names = client
            .find(Locator::Css("#reviewers-chart svg"))
            .await?
            .text()
            .await?;
        assert!(
            names.contains("Bob Reviewer") && names.contains("Carol Reviewer"),
            "{names}"
        );

        // Tall enough for the whole page in one picture.
        client.set_window_size(1280, 2550).await?;
        let desktop = client.screenshot().await?;
        assert!(desktop.starts_with(b"\x89PNG"), "a PNG");
        let path = screenshot_path("review-flow.png");
        std::fs::write(&path, &desktop).unwrap();

        // On a phone: nothing wider than the screen; the charts scale down to it.
        client.set_window_size(390, 844).await?;
        let widths = client
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth,
                         ...[...document.querySelectorAll('figure.chart svg')]
                            .map(s => Math.ceil(s.getBoundingClientRect().right))];",
                vec![],
            )
            .await?;
        let widths: Vec<u64> = widths
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_u64().unwrap())
            .collect();
        let window = widths[1];
        assert!(
            widths[0] <= window,
            "{} px wide in a {window} px window",
            widths[0]
        );
        assert_eq!(widths.len(), 5, "three charts");
        for right in &widths[2..] {
            assert!(
                *right <= window,
                "a chart ends at {right} px in a {window} px window"
            );
        }
        let phone = client.screenshot().await?;
        std::fs::write(screenshot_path("review-flow-phone.png"), &phone).unwrap();
        let _ = writeln!(
            std::io::stderr().lock(),
            "review-flow screenshots: {} and review-flow-phone.png beside it",
            path.display()
        );
        Ok::<(), fantoccini::error::CmdError>(())
    })
    .catch_unwind()
    .await;
    end_session(client, result).await;
}

/// Closes the browser whatever the session did, then fails as the session failed (its error,
/// or its panic resumed).
async fn end_session(
    client: fantoccini::Client,
    result: std::thread::Result<Result<(), fantoccini::error::CmdError>>,
) {
    let closed = client.close().await;
    match result {
        Ok(result) => result.expect("the browser session"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
    closed.expect("closing the browser");
}
