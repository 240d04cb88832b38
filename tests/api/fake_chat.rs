//! A fake chat server (wiremock) for the notification tests: it records each request with its
//! headers and the instant it arrived, and answers from a script (the last answer repeats), so a
//! test can say "429, then 200" and measure the gap.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Longest any request is waited for.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// What HipChat answers a room notification: 204 No Content.
pub fn hipchat_ok() -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(204)
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub wall: SystemTime,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Hit {
    /// HipChat's `message`.
    pub fn html(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the message is about PR `number` (its link is in the body).
    pub fn is_about(&self, number: i64) -> bool {
        self.body
            .to_string()
            .contains(&format!("/pull-requests/{number}"))
    }

    /// The Teams card's TextBlock texts.
    pub fn card_texts(&self) -> Vec<String> {
        self.body["attachments"][0]["content"]["body"]
            .as_array()
            .unwrap_or_else(|| panic!("not a Teams card: {}", self.body))
            .iter()
            .map(|b| b["text"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// One scripted answer: fixed, or made when the request arrives (for headers holding a time).
#[derive(Clone)]
pub enum Answer {
    Fixed(ResponseTemplate),
    Made(Arc<dyn Fn() -> ResponseTemplate + Send + Sync>),
}

impl From<ResponseTemplate> for Answer {
    fn from(template: ResponseTemplate) -> Self {
        Answer::Fixed(template)
    }
}

/// Records every request, then answers with the next scripted response (the last one repeats).
struct Scripted {
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Respond for Scripted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.hits.lock().unwrap().push(Hit {
            at: Instant::now(),
            wall: SystemTime::now(),
            method: request.method.to_string(),
            path: request.url.path().to_owned(),
            query: request.url.query().map(str::to_owned),
            content_type: request
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            headers: request
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
        });
        let mut script = self.script.lock().unwrap();
        let answer = if script.len() > 1 {
            script.pop_front()
        } else {
            script.front().cloned()
        };
        match answer {
            Some(Answer::Fixed(template)) => template,
            Some(Answer::Made(make)) => make(),
            None => ResponseTemplate::new(204),
        }
    }
}

pub struct Fake {
    pub server: MockServer,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Fake {
    pub async fn start(answers: Vec<ResponseTemplate>) -> Fake {
        Fake::start_with(answers.into_iter().map(Answer::from).collect()).await
    }

    pub async fn start_with(answers: Vec<Answer>) -> Fake {
        let server = MockServer::start().await;
        let hits = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(answers)));
        Mock::given(any())
            .respond_with(Scripted {
                hits: hits.clone(),
                script: script.clone(),
            })
            .mount(&server)
            .await;
        Fake {
            server,
            hits,
            script,
        }
    }

    /// Replaces what the fake answers from now on.
    pub fn answer(&self, answers: Vec<ResponseTemplate>) {
        *self.script.lock().unwrap() = answers.into_iter().map(Answer::from).collect();
    }

    /// The fake's address with a path and query.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.server.uri(), path_and_query)
    }

    /// Waits (at most `PATIENCE`) until `count` requests arrived; answers all so far.
    pub async fn wait_for_hits(&self, count: usize) -> Vec<Hit> {
        let started = Instant::now();
        loop {
            let hits = self.hits();
            if hits.len() >= count {
                return hits;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "expected {count} request(s) to the chat server, got {}: {hits:#?}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The fake's address with a path and a query.
    pub fn url_with(&self, path: &str, query: &str) -> String {
        format!("{}{path}?{query}", self.server.uri())
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits for `count` requests, then a little more to be sure no more arrive.
    pub async fn exactly(&self, count: usize) -> Vec<Hit> {
        let started = Instant::now();
        loop {
            let hits = self.hits();
            if hits.len() >= count {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let hits = self.hits();
                assert_eq!(hits.len(), count, "more requests than expected: {hits:#?}");
                return hits;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "expected {count} request(s) to the chat server, got {}: {hits:#?}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
