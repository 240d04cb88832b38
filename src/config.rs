//! Settings: defaults, then an optional TOML file, then `PR_REMINDER_*` environment variables.
//! Validated once at start; an invalid value names its key and the process exits with code 2.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use crate::domain::routing::{Announce, Route, DEFAULT_IGNORE_TITLE_PATTERNS};
use crate::domain::DEFAULT_REQUIRED_APPROVALS;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = "./pr-reminder.db";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
const ENV_PREFIX: &str = "PR_REMINDER_";

/// How `/webhooks/bitbucket` treats `X-Hub-Signature`.
#[derive(Clone)]
pub enum SignaturePolicy {
    /// Verify against these secrets (several during a rotation).
    Verify(Vec<SecretString>),
    /// No secret, explicitly allowed by the operator (`PR_REMINDER_INSECURE_SKIP_SIGNATURE=1`).
    Insecure,
    /// Nothing configured at all and listening on loopback only: the README's first command.
    Demo,
}

impl fmt::Debug for SignaturePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignaturePolicy::Verify(secrets) => {
                write!(f, "verify ({} secret(s), redacted)", secrets.len())
            }
            SignaturePolicy::Insecure => f.write_str("INSECURE: signatures not checked"),
            SignaturePolicy::Demo => f.write_str("DEMO: signatures not checked, loopback only"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The effective settings. `Debug` never shows a secret.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database: PathBuf,
    pub signature: SignaturePolicy,
    pub required_approvals: u32,
    pub max_body_bytes: usize,
    /// SQLite `synchronous`: `full` (default: a 2xx survives power loss) or `normal`.
    pub synchronous: String,
    pub max_batch: usize,
    pub log_format: LogFormat,
    pub notify: NotifySettings,
    pub sweep: SweepSettings,
    pub commands: CommandSettings,
}

/// The `/reviews` chat command.
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// HipChat: the secret path segment of `POST /commands/hipchat/{token}`.
    pub hipchat_token: Option<SecretToken>,
    /// Slack: verifies `X-Slack-Signature`.
    pub slack_signing_secret: Option<SecretToken>,
    /// Mattermost: `Authorization: Token <token>`.
    pub mattermost_token: Option<SecretToken>,
    /// How long `/reviews snooze` hides a PR when no duration is given.
    pub default_snooze: std::time::Duration,
    /// Chat users mapped to Bitbucket accounts.
    pub users: Vec<UserMapping>,
}

impl Default for CommandSettings {
    fn default() -> Self {
        CommandSettings {
            hipchat_token: None,
            slack_signing_secret: None,
            mattermost_token: None,
            default_snooze: std::time::Duration::from_secs(24 * 3600),
            users: Vec::new(),
        }
    }
}

/// One person: their Bitbucket account (account_id, uuid, nickname or username) and their chat
/// names (HipChat mention name, Slack/Mattermost user id or name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserMapping {
    pub bitbucket: String,
    pub hipchat: Option<String>,
    pub slack: Option<String>,
}

/// The periodic digest (`POST /sweep`, `pr-reminder sweep`, optional built-in schedule).
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// Bearer token for `POST /sweep`; `None` disables the endpoint.
    pub token: Option<SecretToken>,
    /// A second sweep within this time of the last posted one posts nothing (unless forced).
    pub min_interval: std::time::Duration,
    /// PRs older than this make the digest red.
    pub escalate_after: std::time::Duration,
    /// Count only time on working days towards `escalate_after`.
    pub escalate_working_days_only: bool,
    pub calendar: crate::domain::calendar::Calendar,
    /// Post "all clear" when nothing is pending (off: say nothing).
    pub all_clear: bool,
    /// Built-in schedule (cron, 5 or 6 fields, in `calendar.tz`) for those who run only the binary.
    pub schedule: Option<String>,
}

impl Default for SweepSettings {
    fn default() -> Self {
        SweepSettings {
            token: None,
            min_interval: std::time::Duration::from_secs(50 * 60),
            escalate_after: std::time::Duration::from_secs(3 * 24 * 3600),
            escalate_working_days_only: false,
            calendar: crate::domain::calendar::Calendar::default(),
            all_clear: false,
            schedule: None,
        }
    }
}

/// A secret whose `Debug` says nothing.
#[derive(Clone)]
pub struct SecretToken(pub SecretString);

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `0 9 * * Mon-Fri` (crontab) or with seconds first: what the `cron` crate reads.
pub fn parse_schedule(text: &str) -> Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {text}")
    } else {
        text.to_owned()
    };
    full.parse::<cron::Schedule>()
        .map_err(|e| format!("`{text}` is not a cron expression: {e}"))
}

/// Where a room's messages go. The URLs carry tokens, so they are secrets.
#[derive(Clone)]
pub enum Sink {
    /// A HipChat v2 room notification URL, as pasted (with its `auth_token`).
    HipChat(SecretString),
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
    Slack(SecretString),
    /// Printed to standard output (no chat configured).
    Console,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::HipChat(url) => write!(f, "hipchat {}", redact_url(url.expose_secret())),
            Sink::Slack(url) => write!(f, "slack {}", redact_url(url.expose_secret())),
            Sink::Console => f.write_str("console"),
        }
    }
}

/// `https://host/[redacted]`: enough to recognise the service, nothing that authenticates.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}/[redacted]",
            parsed.scheme(),
            parsed.host_str().unwrap_or("?")
        ),
        Err(_) => "[redacted]".into(),
    }
}

#[derive(Debug, Clone)]
pub struct Room {
    pub name: String,
    pub sink: Sink,
}

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub rooms: Vec<Room>,
    pub routes: Vec<Route>,
    /// Events for one PR within this window become one message showing the latest state.
    pub coalesce: std::time::Duration,
    /// Attempts before a message is marked failed.
    pub max_attempts: u32,
    /// Per HTTP request to the chat server.
    pub timeout: std::time::Duration,
    /// First retry delay; doubles (with jitter) up to `retry_max`.
    pub retry_min: std::time::Duration,
    pub retry_max: std::time::Duration,
    /// Most messages per minute to one room (HipChat's flood limit is 30).
    pub room_rate_per_minute: u32,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            rooms: vec![Room {
                name: "console".into(),
                sink: Sink::Console,
            }],
            routes: vec![Route {
                repositories: vec!["*".into()],
                room: "console".into(),
                required_approvals: None,
                announce: Announce::default(),
                ignore_title_patterns: DEFAULT_IGNORE_TITLE_PATTERNS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            }],
            coalesce: std::time::Duration::from_secs(30),
            max_attempts: 10,
            timeout: std::time::Duration::from_secs(10),
            retry_min: std::time::Duration::from_secs(1),
            retry_max: std::time::Duration::from_secs(300),
            room_rate_per_minute: 30,
        }
    }
}

impl Settings {
    /// Defaults with signature checking off; for tests and embedding. `load` is the real entry.
    pub fn with_defaults(signature: SignaturePolicy) -> Self {
        Settings {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            database: PathBuf::from(DEFAULT_DATABASE),
            signature,
            required_approvals: DEFAULT_REQUIRED_APPROVALS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            synchronous: "full".into(),
            max_batch: 512,
            log_format: LogFormat::Text,
            notify: NotifySettings::default(),
            sweep: SweepSettings::default(),
            commands: CommandSettings::default(),
        }
    }

    /// Reads the file (if given) and the environment, then validates.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        insecure_flag: bool,
    ) -> Result<Settings, ConfigError> {
        let mut raw = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
                })?;
                toml::from_str::<RawSettings>(&text).map_err(|e| {
                    ConfigError::new(
                        path.display().to_string(),
                        e.message().to_owned() + &describe_span(&text, e.span()),
                    )
                })?
            }
            None => RawSettings::default(),
        };
        let configured = file.is_some() || env.keys().any(|k| k.starts_with(ENV_PREFIX));
        raw.apply_env(env)?;
        raw.resolve(configured, insecure_flag)
    }

    /// The settings as `check-config` prints them: TOML, secrets redacted.
    pub fn render(&self) -> String {
        let secret = match &self.signature {
            SignaturePolicy::Verify(s) => format!("\"[redacted: {} secret(s)]\"", s.len()),
            SignaturePolicy::Insecure | SignaturePolicy::Demo => "\"\" # not set".into(),
        };
        let mut out = format!(
            "listen = \"{}\"\ndatabase = \"{}\"\nwebhook_secret = {}\ninsecure_skip_signature = {}\n\
             # signature policy: {:?}\nrequired_approvals = {}\nmax_body_bytes = {}\n\
             synchronous = \"{}\"\nmax_batch = {}\nlog_format = \"{}\"\n",
            self.listen,
            self.database.display(),
            secret,
            matches!(self.signature, SignaturePolicy::Insecure),
            self.signature,
            self.required_approvals,
            self.max_body_bytes,
            self.synchronous,
            self.max_batch,
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
        );
        let n = &self.notify;
        out.push_str(&format!(
            "\n[notify]\ncoalesce_seconds = {}\nmax_attempts = {}\ntimeout_seconds = {}\n\
             retry_min_ms = {}\nretry_max_seconds = {}\nroom_rate_per_minute = {}\n",
            n.coalesce.as_secs_f64(),
            n.max_attempts,
            n.timeout.as_secs_f64(),
            n.retry_min.as_millis(),
            n.retry_max.as_secs(),
            n.room_rate_per_minute
        ));
        let sw = &self.sweep;
        out.push_str(&format!(
            "\n[sweep]\ntoken = {}\nmin_interval_minutes = {}\nescalate_after_hours = {}\n\
             escalate_working_days_only = {}\ntimezone = \"{}\"\nworking_days = {:?}\n\
             quiet_hours = {}\nall_clear = {}\nschedule = {}\n",
            if sw.token.is_some() {
                "\"[redacted]\""
            } else {
                "\"\" # not set: POST /sweep is disabled"
            },
            sw.min_interval.as_secs_f64() / 60.0,
            sw.escalate_after.as_secs_f64() / 3600.0,
            sw.escalate_working_days_only,
            sw.calendar.tz,
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .zip(sw.calendar.working_days)
                .filter(|(_, on)| *on)
                .map(|(d, _)| *d)
                .collect::<Vec<_>>(),
            sw.calendar
                .quiet_hours
                .map_or("\"\"".to_owned(), |(a, b)| format!(
                    "\"{}-{}\"",
                    a.format("%H:%M"),
                    b.format("%H:%M")
                )),
            sw.all_clear,
            sw.schedule
                .as_deref()
                .map_or("\"\"".to_owned(), |s| format!("\"{s}\"")),
        ));
        let c = &self.commands;
        let shown = |s: &Option<SecretToken>| {
            if s.is_some() {
                "\"[redacted]\""
            } else {
                "\"\" # not set"
            }
        };
        out.push_str(&format!(
            "\n[commands]\nhipchat_token = {}\nslack_signing_secret = {}\nmattermost_token = {}\n\
             default_snooze_hours = {}\n# {} user mapping(s)\n",
            shown(&c.hipchat_token),
            shown(&c.slack_signing_secret),
            shown(&c.mattermost_token),
            c.default_snooze.as_secs_f64() / 3600.0,
            c.users.len()
        ));
        for room in &n.rooms {
            out.push_str(&format!(
                "\n[[rooms]]\nname = \"{}\"\n# sink: {:?}\n",
                room.name, room.sink
            ));
        }
        for route in &n.routes {
            out.push_str(&format!(
                "\n[[routes]]\nrepositories = {:?}\nroom = \"{}\"\nrequired_approvals = {}\n\
                 # announce: {:?}\nignore_title_patterns = {:?}\n",
                route.repositories,
                route.room,
                route
                    .required_approvals
                    .map_or("\"default\"".to_owned(), |n| n.to_string()),
                route.announce,
                route.ignore_title_patterns
            ));
        }
        out
    }
}

fn describe_span(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].lines().count().max(1);
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// A configuration problem, naming the key (file key or environment variable).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// One secret or a list; in the environment, a comma-separated list.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecretList {
    One(String),
    Many(Vec<String>),
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    listen: Option<String>,
    database: Option<PathBuf>,
    webhook_secret: Option<SecretList>,
    required_approvals: Option<i64>,
    insecure_skip_signature: Option<bool>,
    max_body_bytes: Option<i64>,
    synchronous: Option<String>,
    max_batch: Option<i64>,
    log_format: Option<LogFormat>,
    notify: Option<RawNotify>,
    sweep: Option<RawSweep>,
    commands: Option<RawCommands>,
    users: Option<Vec<UserMapping>>,
    rooms: Option<Vec<RawRoom>>,
    routes: Option<Vec<RawRoute>>,
    /// Shortcuts: one room for every repository.
    #[serde(skip)]
    hipchat_url: Option<String>,
    #[serde(skip)]
    slack_webhook_url: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    coalesce_seconds: Option<f64>,
    max_attempts: Option<i64>,
    timeout_seconds: Option<f64>,
    retry_min_ms: Option<i64>,
    retry_max_seconds: Option<i64>,
    room_rate_per_minute: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommands {
    hipchat_token: Option<String>,
    slack_signing_secret: Option<String>,
    mattermost_token: Option<String>,
    default_snooze_hours: Option<f64>,
}

fn long_secret(key: &str, value: Option<String>) -> Result<Option<SecretToken>, ConfigError> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.len() < 16 => Err(ConfigError::new(
            key,
            "is shorter than 16 characters; use e.g. `openssl rand -hex 32`",
        )),
        Some(v) => Ok(Some(SecretToken(SecretString::from(v)))),
    }
}

impl RawCommands {
    fn resolve(self, commands: &mut CommandSettings) -> Result<(), ConfigError> {
        commands.hipchat_token = long_secret(
            "commands.hipchat_token (PR_REMINDER_COMMAND_TOKEN)",
            self.hipchat_token,
        )?;
        // Slack's signing secrets are 32 hex digits; Mattermost's tokens 26 characters.
        commands.slack_signing_secret = long_secret(
            "commands.slack_signing_secret (PR_REMINDER_SLACK_SIGNING_SECRET)",
            self.slack_signing_secret,
        )?;
        commands.mattermost_token = long_secret(
            "commands.mattermost_token (PR_REMINDER_MATTERMOST_TOKEN)",
            self.mattermost_token,
        )?;
        if let Some(h) = self.default_snooze_hours {
            let h = number("commands.default_snooze_hours", h, 0.1, 2160.0)?;
            commands.default_snooze = std::time::Duration::from_secs_f64(h * 3600.0);
        }
        Ok(())
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    token: Option<String>,
    min_interval_minutes: Option<f64>,
    escalate_after_hours: Option<f64>,
    escalate_working_days_only: Option<bool>,
    timezone: Option<String>,
    working_days: Option<Vec<String>>,
    quiet_hours: Option<String>,
    all_clear: Option<bool>,
    schedule: Option<String>,
}

impl RawSweep {
    fn resolve(self, sweep: &mut SweepSettings) -> Result<(), ConfigError> {
        use crate::domain::calendar::{parse_hours, parse_working_days};
        use std::time::Duration;
        sweep.token = long_secret("sweep.token (PR_REMINDER_SWEEP_TOKEN)", self.token)?;
        if let Some(v) = self.min_interval_minutes {
            let v = number("sweep.min_interval_minutes", v, 0.0, 10_080.0)?;
            sweep.min_interval = Duration::from_secs_f64(v * 60.0);
        }
        if let Some(v) = self.escalate_after_hours {
            let v = number("sweep.escalate_after_hours", v, 0.0, 8760.0)?;
            sweep.escalate_after = Duration::from_secs_f64(v * 3600.0);
        }
        if let Some(v) = self.escalate_working_days_only {
            sweep.escalate_working_days_only = v;
        }
        if let Some(tz) = self.timezone {
            sweep.calendar.tz = tz.trim().parse().map_err(|_| {
                ConfigError::new(
                    "sweep.timezone",
                    format!("`{tz}` is not an IANA time zone such as Europe/Berlin"),
                )
            })?;
        }
        if let Some(days) = self.working_days {
            sweep.calendar.working_days =
                parse_working_days(&days).map_err(|e| ConfigError::new("sweep.working_days", e))?;
        }
        if let Some(hours) = self.quiet_hours.filter(|h| !h.trim().is_empty()) {
            sweep.calendar.quiet_hours =
                Some(parse_hours(&hours).map_err(|e| ConfigError::new("sweep.quiet_hours", e))?);
        }
        if let Some(v) = self.all_clear {
            sweep.all_clear = v;
        }
        if let Some(schedule) = self.schedule.filter(|s| !s.trim().is_empty()) {
            parse_schedule(&schedule).map_err(|e| ConfigError::new("sweep.schedule", e))?;
            sweep.schedule = Some(schedule);
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoom {
    name: String,
    hipchat_url: Option<String>,
    slack_webhook_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    repositories: Vec<String>,
    room: String,
    required_approvals: Option<i64>,
    announce_opened: Option<bool>,
    announce_approvals: Option<bool>,
    announce_changes_requested: Option<bool>,
    announce_builds: Option<bool>,
    announce_merged: Option<bool>,
    announce_declined: Option<bool>,
    ignore_title_patterns: Option<Vec<String>>,
}

fn parse_chat_url(key: &str, url: &str) -> Result<SecretString, ConfigError> {
    match reqwest::Url::parse(url.trim()) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
            Ok(SecretString::from(url.trim().to_owned()))
        }
        _ => Err(ConfigError::new(
            key,
            "is not an http(s) URL (the value is not shown: it holds a token)",
        )),
    }
}

/// A whole number within `lo..=hi`, as the setting's type.
fn whole<T: TryFrom<i64>>(key: &str, n: i64, lo: i64, hi: i64) -> Result<T, ConfigError> {
    if !(lo..=hi).contains(&n) {
        return Err(ConfigError::new(
            key,
            format!("{n} is not between {lo} and {hi}"),
        ));
    }
    T::try_from(n).map_err(|_| ConfigError::new(key, format!("{n} is out of range")))
}

/// A number within `lo..=hi`.
fn number(key: &str, v: f64, lo: f64, hi: f64) -> Result<f64, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::new(
            key,
            format!("{v} is not between {lo} and {hi}"),
        ))
    }
}

impl RawNotify {
    fn resolve(self, notify: &mut NotifySettings) -> Result<(), ConfigError> {
        use std::time::Duration;
        if let Some(v) = self.coalesce_seconds {
            notify.coalesce =
                Duration::from_secs_f64(number("notify.coalesce_seconds", v, 0.0, 3600.0)?);
        }
        if let Some(v) = self.max_attempts {
            notify.max_attempts = whole("notify.max_attempts", v, 1, 1000)?;
        }
        if let Some(v) = self.timeout_seconds {
            notify.timeout =
                Duration::from_secs_f64(number("notify.timeout_seconds", v, 0.05, 300.0)?);
        }
        if let Some(v) = self.retry_min_ms {
            notify.retry_min =
                Duration::from_millis(whole("notify.retry_min_ms", v, 1, 3_600_000)?);
        }
        if let Some(v) = self.retry_max_seconds {
            notify.retry_max =
                Duration::from_secs(whole("notify.retry_max_seconds", v, 1, 86_400)?);
        }
        if let Some(v) = self.room_rate_per_minute {
            notify.room_rate_per_minute = whole("notify.room_rate_per_minute", v, 1, 6000)?;
        }
        Ok(())
    }
}

/// Rooms and routes from the file, plus the one-room shortcuts from the environment.
fn resolve_rooms(
    rooms: Option<Vec<RawRoom>>,
    routes: Option<Vec<RawRoute>>,
    hipchat_url: Option<String>,
    slack_webhook_url: Option<String>,
    notify: &mut NotifySettings,
) -> Result<(), ConfigError> {
    let mut out_rooms: Vec<Room> = Vec::new();
    for (i, room) in rooms.into_iter().flatten().enumerate() {
        let key = format!("rooms[{i}]");
        if room.name.trim().is_empty() {
            return Err(ConfigError::new(format!("{key}.name"), "must not be empty"));
        }
        if out_rooms.iter().any(|r| r.name == room.name) {
            return Err(ConfigError::new(
                format!("{key}.name"),
                format!("room `{}` is defined twice", room.name),
            ));
        }
        let sink = match (room.hipchat_url, room.slack_webhook_url) {
            (Some(url), None) => {
                Sink::HipChat(parse_chat_url(&format!("{key}.hipchat_url"), &url)?)
            }
            (None, Some(url)) => {
                Sink::Slack(parse_chat_url(&format!("{key}.slack_webhook_url"), &url)?)
            }
            _ => {
                return Err(ConfigError::new(
                    key,
                    "needs exactly one of hipchat_url, slack_webhook_url",
                ))
            }
        };
        out_rooms.push(Room {
            name: room.name,
            sink,
        });
    }

    let mut out_routes: Vec<Route> = Vec::new();
    for (i, route) in routes.into_iter().flatten().enumerate() {
        let key = format!("routes[{i}]");
        if route.repositories.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.repositories"),
                "lists no repository",
            ));
        }
        for pattern in &route.repositories {
            globset::Glob::new(pattern).map_err(|e| {
                ConfigError::new(format!("{key}.repositories"), format!("`{pattern}`: {e}"))
            })?;
        }
        if !out_rooms.iter().any(|r| r.name == route.room) {
            return Err(ConfigError::new(
                format!("{key}.room"),
                format!("no room is named `{}`", route.room),
            ));
        }
        let defaults = Announce::default();
        out_routes.push(Route {
            repositories: route.repositories,
            room: route.room,
            required_approvals: route
                .required_approvals
                .map(|n| whole(&format!("{key}.required_approvals"), n, 1, 100))
                .transpose()?,
            announce: Announce {
                opened: route.announce_opened.unwrap_or(defaults.opened),
                approvals: route.announce_approvals.unwrap_or(defaults.approvals),
                changes_requested: route
                    .announce_changes_requested
                    .unwrap_or(defaults.changes_requested),
                builds: route.announce_builds.unwrap_or(defaults.builds),
                merged: route.announce_merged.unwrap_or(defaults.merged),
                declined: route.announce_declined.unwrap_or(defaults.declined),
            },
            ignore_title_patterns: route.ignore_title_patterns.unwrap_or_else(|| {
                DEFAULT_IGNORE_TITLE_PATTERNS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }),
        });
    }
    if out_routes.is_empty() {
        match out_rooms.len() {
            0 => {}
            1 => out_routes.push(Route {
                repositories: vec!["*".into()],
                room: out_rooms[0].name.clone(),
                ..NotifySettings::default().routes.remove(0)
            }),
            _ => {
                return Err(ConfigError::new(
                    "routes",
                    "several rooms are defined but no route says which repositories go where",
                ))
            }
        }
    }

    // The environment shortcuts: one more room that takes every repository no route claimed.
    for (key, url, name) in [
        ("PR_REMINDER_HIPCHAT_URL", hipchat_url, "hipchat"),
        ("PR_REMINDER_SLACK_WEBHOOK_URL", slack_webhook_url, "slack"),
    ] {
        let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
            continue;
        };
        let secret = parse_chat_url(key, &url)?;
        let sink = if name == "hipchat" {
            Sink::HipChat(secret)
        } else {
            Sink::Slack(secret)
        };
        let name = if out_rooms.iter().any(|r| r.name == name) {
            format!("{name}-env")
        } else {
            name.to_owned()
        };
        out_rooms.push(Room {
            name: name.clone(),
            sink,
        });
        out_routes.push(Route {
            repositories: vec!["*".into()],
            room: name,
            ..NotifySettings::default().routes.remove(0)
        });
    }

    if !out_rooms.is_empty() {
        notify.rooms = out_rooms;
        notify.routes = out_routes;
    }
    Ok(())
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::new(
            key,
            format!("`{value}` is not a boolean (use 1/0, true/false)"),
        )),
    }
}

fn parse_int(key: &str, value: &str) -> Result<i64, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(key, format!("`{value}` is not a whole number")))
}

impl RawSettings {
    fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        let get = |name: &str| env.get(&format!("{ENV_PREFIX}{name}")).map(String::as_str);
        if let Some(v) = get("LISTEN") {
            self.listen = Some(v.to_owned());
        }
        if let Some(v) = get("DATABASE") {
            self.database = Some(PathBuf::from(v));
        }
        if let Some(v) = get("WEBHOOK_SECRET") {
            self.webhook_secret = Some(SecretList::One(v.to_owned()));
        }
        if let Some(v) = get("REQUIRED_APPROVALS") {
            self.required_approvals = Some(parse_int("PR_REMINDER_REQUIRED_APPROVALS", v)?);
        }
        if let Some(v) = get("INSECURE_SKIP_SIGNATURE") {
            self.insecure_skip_signature =
                Some(parse_bool("PR_REMINDER_INSECURE_SKIP_SIGNATURE", v)?);
        }
        if let Some(v) = get("MAX_BODY_BYTES") {
            self.max_body_bytes = Some(parse_int("PR_REMINDER_MAX_BODY_BYTES", v)?);
        }
        if let Some(v) = get("SYNCHRONOUS") {
            self.synchronous = Some(v.to_owned());
        }
        if let Some(v) = get("MAX_BATCH") {
            self.max_batch = Some(parse_int("PR_REMINDER_MAX_BATCH", v)?);
        }
        if let Some(v) = get("HIPCHAT_URL") {
            self.hipchat_url = Some(v.to_owned());
        }
        if let Some(v) = get("SLACK_WEBHOOK_URL") {
            self.slack_webhook_url = Some(v.to_owned());
        }
        if let Some(v) = get("SWEEP_TOKEN") {
            self.sweep.get_or_insert_with(RawSweep::default).token = Some(v.to_owned());
        }
        if let Some(v) = get("COMMAND_TOKEN") {
            self.commands
                .get_or_insert_with(RawCommands::default)
                .hipchat_token = Some(v.to_owned());
        }
        if let Some(v) = get("SLACK_SIGNING_SECRET") {
            self.commands
                .get_or_insert_with(RawCommands::default)
                .slack_signing_secret = Some(v.to_owned());
        }
        if let Some(v) = get("MATTERMOST_TOKEN") {
            self.commands
                .get_or_insert_with(RawCommands::default)
                .mattermost_token = Some(v.to_owned());
        }
        if let Some(v) = get("LOG_FORMAT") {
            self.log_format = Some(match v.trim().to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(
                        "PR_REMINDER_LOG_FORMAT",
                        format!("`{v}` is not one of text, json"),
                    ))
                }
            });
        }
        Ok(())
    }

    fn resolve(self, configured: bool, insecure_flag: bool) -> Result<Settings, ConfigError> {
        let mut settings = Settings::with_defaults(SignaturePolicy::Demo);
        if let Some(listen) = self.listen {
            settings.listen = listen.parse().map_err(|_| {
                ConfigError::new(
                    "listen (PR_REMINDER_LISTEN)",
                    format!("`{listen}` is not an address:port such as 127.0.0.1:8080"),
                )
            })?;
        }
        if let Some(path) = self.database {
            if path.as_os_str().is_empty() {
                return Err(ConfigError::new(
                    "database (PR_REMINDER_DATABASE)",
                    "must be a file path",
                ));
            }
            settings.database = path;
        }
        if let Some(n) = self.required_approvals {
            settings.required_approvals = whole(
                "required_approvals (PR_REMINDER_REQUIRED_APPROVALS)",
                n,
                1,
                100,
            )?;
        }
        if let Some(n) = self.max_body_bytes {
            settings.max_body_bytes = whole(
                "max_body_bytes (PR_REMINDER_MAX_BODY_BYTES)",
                n,
                1024,
                64 * 1024 * 1024,
            )?;
        }
        if let Some(mode) = self.synchronous {
            let mode = mode.trim().to_ascii_lowercase();
            if !matches!(mode.as_str(), "full" | "normal" | "extra") {
                return Err(ConfigError::new(
                    "synchronous (PR_REMINDER_SYNCHRONOUS)",
                    format!("`{mode}` is not one of full, normal, extra"),
                ));
            }
            settings.synchronous = mode;
        }
        if let Some(n) = self.max_batch {
            settings.max_batch = whole("max_batch (PR_REMINDER_MAX_BATCH)", n, 1, 10_000)?;
        }
        if let Some(format) = self.log_format {
            settings.log_format = format;
        }
        if let Some(notify) = self.notify {
            notify.resolve(&mut settings.notify)?;
        }
        if let Some(sweep) = self.sweep {
            sweep.resolve(&mut settings.sweep)?;
        }
        if let Some(commands) = self.commands {
            commands.resolve(&mut settings.commands)?;
        }
        for (i, user) in self.users.iter().flatten().enumerate() {
            if user.bitbucket.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("users[{i}].bitbucket"),
                    "must not be empty",
                ));
            }
        }
        settings.commands.users = self.users.unwrap_or_default();
        resolve_rooms(
            self.rooms,
            self.routes,
            self.hipchat_url,
            self.slack_webhook_url,
            &mut settings.notify,
        )?;

        let secrets: Vec<SecretString> = match self.webhook_secret {
            None => Vec::new(),
            Some(SecretList::One(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| SecretString::from(s.to_owned()))
                .collect(),
            Some(SecretList::Many(list)) => list
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map(SecretString::from)
                .collect(),
        };
        let insecure = insecure_flag || self.insecure_skip_signature.unwrap_or(false);
        settings.signature = if !secrets.is_empty() {
            SignaturePolicy::Verify(secrets)
        } else if insecure {
            SignaturePolicy::Insecure
        } else if !configured && settings.listen.ip().is_loopback() {
            SignaturePolicy::Demo
        } else {
            return Err(ConfigError::new(
                "webhook_secret (PR_REMINDER_WEBHOOK_SECRET)",
                "not set: deliveries could not be verified. Set the secret you entered in \
                 Bitbucket, or PR_REMINDER_INSECURE_SKIP_SIGNATURE=1 to accept unsigned ones",
            ));
        };
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nothing_configured_is_demo_mode() {
        let s = Settings::load(None, &env(&[]), false).unwrap();
        assert!(matches!(s.signature, SignaturePolicy::Demo));
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.database, PathBuf::from(DEFAULT_DATABASE));
        assert_eq!(s.required_approvals, 2);
    }

    #[test]
    fn configured_without_secret_refuses() {
        let err = Settings::load(
            None,
            &env(&[("PR_REMINDER_REQUIRED_APPROVALS", "3")]),
            false,
        )
        .unwrap_err();
        assert!(err.key.contains("PR_REMINDER_WEBHOOK_SECRET"), "{err}");
        let s = Settings::load(
            None,
            &env(&[("PR_REMINDER_INSECURE_SKIP_SIGNATURE", "1")]),
            false,
        )
        .unwrap();
        assert!(matches!(s.signature, SignaturePolicy::Insecure));
        let s = Settings::load(None, &env(&[("PR_REMINDER_LISTEN", "0.0.0.0:80")]), true).unwrap();
        assert!(matches!(s.signature, SignaturePolicy::Insecure));
    }

    #[test]
    fn secrets_split_on_commas_and_never_print() {
        let s = Settings::load(
            None,
            &env(&[("PR_REMINDER_WEBHOOK_SECRET", "old-s3cret, new-s3cret")]),
            false,
        )
        .unwrap();
        match &s.signature {
            SignaturePolicy::Verify(list) => assert_eq!(list.len(), 2),
            other => panic!("{other:?}"),
        }
        let shown = format!("{s:?}\n{}", s.render());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("2 secret(s)"));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (key, value) in [
            ("PR_REMINDER_REQUIRED_APPROVALS", "two"),
            ("PR_REMINDER_REQUIRED_APPROVALS", "0"),
            ("PR_REMINDER_LISTEN", "localhost"),
            ("PR_REMINDER_INSECURE_SKIP_SIGNATURE", "maybe"),
            ("PR_REMINDER_MAX_BODY_BYTES", "12"),
            ("PR_REMINDER_LOG_FORMAT", "xml"),
        ] {
            let err = Settings::load(
                None,
                &env(&[(key, value), ("PR_REMINDER_WEBHOOK_SECRET", "s")]),
                false,
            )
            .unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nwebhook_secret = [\"a\", \"b\"]\nrequired_approvals = 3\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&path),
            &env(&[("PR_REMINDER_REQUIRED_APPROVALS", "1")]),
            false,
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.required_approvals, 1);

        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nlisten_port = 3\n").unwrap();
        let err = Settings::load(Some(&path), &env(&[]), false).unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }

    #[test]
    fn rooms_routes_sweep_and_commands_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let room =
            "[[rooms]]\nname = \"a\"\nslack_webhook_url = \"https://hooks.example/T/B/secret\"\n";
        let cases = [
            (
                "[notify]\nmax_attempts = 0\n".to_owned(),
                "notify.max_attempts",
            ),
            (
                "[notify]\ntimeout_seconds = 0.001\n".to_owned(),
                "notify.timeout_seconds",
            ),
            (
                "[sweep]\ntimezone = \"Mars/Olympus\"\n".to_owned(),
                "sweep.timezone",
            ),
            (
                "[sweep]\nquiet_hours = \"late\"\n".to_owned(),
                "sweep.quiet_hours",
            ),
            (
                "[sweep]\nschedule = \"every hour\"\n".to_owned(),
                "sweep.schedule",
            ),
            ("[sweep]\ntoken = \"short\"\n".to_owned(), "sweep.token"),
            (
                "[commands]\ndefault_snooze_hours = 0\n".to_owned(),
                "commands.default_snooze_hours",
            ),
            ("[[rooms]]\nname = \"a\"\n".to_owned(), "rooms[0]"),
            (
                "[[rooms]]\nname = \"a\"\nhipchat_url = \"secret-token-not-a-url\"\n".to_owned(),
                "rooms[0].hipchat_url",
            ),
            (
                format!("{room}[[routes]]\nrepositories = [\"x/*\"]\nroom = \"b\"\n"),
                "routes[0].room",
            ),
            (
                format!("{room}[[routes]]\nrepositories = [\"x/[\"]\nroom = \"a\"\n"),
                "routes[0].repositories",
            ),
            (
                format!("{room}{}", room.replace("\"a\"", "\"b\"")),
                "routes",
            ),
        ];
        for (body, key) in cases {
            std::fs::write(&path, format!("webhook_secret = \"s\"\n{body}")).unwrap();
            let err = Settings::load(Some(&path), &env(&[]), false).unwrap_err();
            // Exactly the key, or the key followed by its environment variable.
            assert!(
                err.key == key || err.key.starts_with(&format!("{key} (")),
                "{body}: {err}"
            );
            assert!(!err.to_string().contains("secret"), "no secret in {err}");
        }
    }
}
