//! Settings: defaults, then an optional TOML file, then `PR_REMINDER_*` environment variables.
//! Validated once at start; an invalid value names its key and the process exits with code 2.
//!
//! Each setting is declared once, as a field of the `Raw*` structs below (the file's spelling,
//! with its default). `ENV_VARS` says which variable lands on which key; figment layers the
//! file and the variables over the defaults; `resolve` checks every value once and builds
//! `Settings`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::calendar::{parse_hours, parse_working_days, Calendar};
pub use crate::domain::routing::{Announce, Route, DEFAULT_IGNORE_TITLE_PATTERNS};
use crate::domain::DEFAULT_REQUIRED_APPROVALS;
use crate::store::Database;

mod sites;
pub use sites::{server_name, Credentials, RepositorySelector, Site, CLOUD_API_URL};

/// The address served when `listen` (`PR_REMINDER_LISTEN`) is unset: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The SQLite file used when `database` (`PR_REMINDER_DATABASE`) is unset, relative to the
/// working directory.
pub const DEFAULT_DATABASE: &str = "./pr-reminder.db";
/// The largest webhook body accepted when `max_body_bytes` is unset (1 MiB); larger ones get 413.
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
    /// Bitbucket sites are configured and no webhook secret: state comes from polling the REST
    /// API only, and deliveries are refused (401) with a reason saying so.
    PollOnly,
}

impl fmt::Debug for SignaturePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignaturePolicy::Verify(secrets) => {
                write!(f, "verify ({} secret(s), redacted)", secrets.len())
            }
            SignaturePolicy::Insecure => f.write_str("INSECURE: signatures not checked"),
            SignaturePolicy::Demo => f.write_str("DEMO: signatures not checked, loopback only"),
            SignaturePolicy::PollOnly => {
                f.write_str("POLL-ONLY: no webhook secret, deliveries refused; REST polling only")
            }
        }
    }
}

/// How logs are written to stderr (`log_format`, `PR_REMINDER_LOG_FORMAT`: `text` or `json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The effective settings. `Debug` never shows a secret.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The HTTP server's address (`listen`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Where the state lives (`database`): a SQLite file, created if missing, or a PostgreSQL
    /// connection string (`postgres://...`, its password redacted wherever it is shown).
    pub database: Database,
    /// Whether and how webhook signatures are checked (`webhook_secret`,
    /// `insecure_skip_signature`).
    pub signature: SignaturePolicy,
    /// Approvals a PR needs before it stops needing review, unless its route says otherwise
    /// (1 to 100).
    pub required_approvals: u32,
    /// The largest webhook body accepted, in bytes (1 KiB to 64 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// The longest a request body may take to arrive (0.1 s to 60 s, default 10 s, Bitbucket's
    /// own delivery timeout): a slower one gets 408 and its connection is freed.
    pub body_timeout: std::time::Duration,
    /// SQLite `synchronous`: `full` (default: a 2xx survives power loss) or `normal`.
    pub synchronous: String,
    /// Most submissions the writer folds into one transaction (1 to 10,000, default 512).
    pub max_batch: usize,
    /// Text or JSON logs.
    pub log_format: LogFormat,
    /// Rooms, routes and delivery of chat messages (`[notify]`, `[[rooms]]`, `[[routes]]`).
    pub notify: NotifySettings,
    /// The periodic digest (`[sweep]`).
    pub sweep: SweepSettings,
    /// The `/reviews` chat command (`[commands]`, `[[users]]`).
    pub commands: CommandSettings,
    /// The Bitbucket sites reconciliation reads (`[[bitbucket]]`, `PR_REMINDER_BITBUCKET_*`).
    pub bitbucket: Vec<Site>,
    /// Who may read `GET /metrics` and `GET /status` (`[monitoring]`).
    pub monitoring: MonitoringSettings,
    /// The Slack bot (`[direct]`): its token and the Web API base, for rooms with a
    /// `slack_channel`.
    pub direct: DirectSettings,
    /// The review-flow figures: window, working time, the weekly report (`[analytics]`).
    pub analytics: AnalyticsSettings,
    /// How long deliveries, sent messages and closed pull requests are kept (`[retention]`).
    pub retention: RetentionSettings,
    /// The rooms an environment variable added (`PR_REMINDER_SLACK_WEBHOOK_URL`...), each with
    /// its catch-all route: (room name, variable). Not file settings: `render` shows them as
    /// comments, since the variable adds them again.
    pub rooms_from_environment: Vec<(String, &'static str)>,
}

/// Access to the operator's views, and what they judge (`[monitoring]`).
#[derive(Debug, Clone)]
pub struct MonitoringSettings {
    /// `GET /metrics` wants `Authorization: Bearer <token>` when set (`metrics_token`,
    /// `PR_REMINDER_METRICS_TOKEN`); unset, it is open (as Prometheus endpoints usually are).
    pub metrics_token: Option<SecretToken>,
    /// `GET /status` wants it as a Bearer token or as the password of HTTP Basic auth
    /// (`status_token`, `PR_REMINDER_STATUS_TOKEN`); unset, the page is off (404) except in demo
    /// mode, where it is open on loopback.
    pub status_token: Option<SecretToken>,
    /// A repository with open pull requests is shown as "webhook silent?" (and counted as
    /// `silent` by `pr_reminder_webhooks`) when no delivery from it has arrived for this long
    /// while its pull requests changed (`webhook_silence_days`, default 7 days; 0.01 to 365).
    pub webhook_silence: std::time::Duration,
}

/// The review-flow figures (`[analytics]`): `pr-reminder report`, `GET /status/review-flow`
/// and the weekly report to each room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsSettings {
    /// Count only the `[sweep]` calendar's working days in every time, in its time zone, as
    /// escalation does (`working_hours_only`, default `false`: wall-clock time).
    pub working_hours_only: bool,
    /// The window figures cover unless asked otherwise (`window_days`, default 28; 1 to 366).
    pub window: chrono::Duration,
    /// When each room gets last week's figures (`weekly_report = "mon 09:00"`: a weekday's
    /// first three letters and a 24-hour time, in `[sweep] timezone`); `None` (the default):
    /// no weekly report.
    pub weekly_report: Option<(chrono::Weekday, chrono::NaiveTime)>,
    /// The review-flow page's address as the team opens it (`page_url`, such as
    /// `https://pr-reminder.example.com/status/review-flow`): the weekly report links to it;
    /// `None` (the default): no link, since nothing else says where the service is reached.
    pub page_url: Option<String>,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            working_hours_only: false,
            window: chrono::Duration::days(28),
            weekly_report: None,
            page_url: None,
        }
    }
}

/// What pr-reminder keeps, and for how long (`[retention]`); `None` keeps rows forever
/// (the setting is `0`). The dated facts of each pull request (`pull_request_facts`) are
/// never pruned: the figures are computed from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Delivery rows (`deliveries_days`, default 90). Whatever the setting, request ids of the
    /// last day are kept, so a redelivery within Bitbucket's retry window is still a duplicate.
    pub deliveries: Option<chrono::Duration>,
    /// Sent and withdrawn outbox rows, room and direct (`outbox_days`, default 30); failed
    /// messages are kept until retried or dismissed.
    pub outbox: Option<chrono::Duration>,
    /// Merged, declined, superseded and deleted pull requests with their reviews
    /// (`closed_pull_requests_days`, default 365), counted from when they closed.
    pub closed_pull_requests: Option<chrono::Duration>,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            deliveries: Some(chrono::Duration::days(90)),
            outbox: Some(chrono::Duration::days(30)),
            closed_pull_requests: Some(chrono::Duration::days(365)),
        }
    }
}

impl Default for MonitoringSettings {
    fn default() -> Self {
        MonitoringSettings {
            metrics_token: None,
            status_token: None,
            webhook_silence: std::time::Duration::from_secs(7 * 86_400),
        }
    }
}

/// The chat bot that posts through a chat's Web API rather than a webhook (`[direct]`): what a
/// `[[rooms]]` entry with `slack_channel` posts and edits with. `Debug` shows the API URL by
/// its scheme and host only (`redact_url`) and the token not at all.
#[derive(Clone)]
pub struct DirectSettings {
    /// The Slack bot token, `xoxb-...` (`slack_bot_token`, `PR_REMINDER_SLACK_BOT_TOKEN`), sent
    /// as `Authorization: Bearer`; needs the `chat:write` scope, and `channels:history` (or
    /// `groups:history` for a private channel) to find a message whose post was cut short.
    pub slack_bot_token: Option<SecretToken>,
    /// The Slack Web API base URL, without a trailing slash (`slack_api_url`,
    /// `PR_REMINDER_SLACK_API_URL`, default `https://slack.com/api`): methods are
    /// `{base}/chat.postMessage` and so on.
    pub slack_api_url: String,
    /// The HipChat server for direct messages (`hipchat_url`, `https://hipchat.example.com`,
    /// without a trailing slash): `POST {hipchat_url}/v2/user/{id}/message`.
    pub hipchat_url: Option<String>,
    /// A HipChat token with the `send_message` scope (`hipchat_token`), sent as
    /// `Authorization: Bearer`.
    pub hipchat_token: Option<SecretToken>,
    /// The Mattermost server (`mattermost_url`, without a trailing slash): `{url}/api/v4/...`.
    pub mattermost_url: Option<String>,
    /// A Mattermost bot account's access token (`mattermost_token`), sent as
    /// `Authorization: Bearer`.
    pub mattermost_token: Option<SecretToken>,
    /// A Teams Workflow's "when a webhook request is received" URL whose flow posts a card in
    /// a chat with the recipient the request names (`teams_workflow_url`; its `sig` is a
    /// secret).
    pub teams_workflow_url: Option<SecretString>,
}

impl DirectSettings {
    /// Whether `chat` can carry direct messages: its token (and server) are set.
    pub fn configured(&self, chat: DirectChat) -> bool {
        match chat {
            DirectChat::Slack => self.slack_bot_token.is_some(),
            DirectChat::HipChat => self.hipchat_url.is_some() && self.hipchat_token.is_some(),
            DirectChat::Mattermost => {
                self.mattermost_url.is_some() && self.mattermost_token.is_some()
            }
            DirectChat::Teams => self.teams_workflow_url.is_some(),
        }
    }
}

impl fmt::Debug for DirectSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectSettings")
            .field("slack_bot_token", &self.slack_bot_token)
            .field("slack_api_url", &redact_url(&self.slack_api_url))
            .finish()
    }
}

/// The Slack Web API's base URL (docs.slack.dev/apis/web-api: `https://slack.com/api/METHOD`).
pub const SLACK_API_URL: &str = "https://slack.com/api";

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
    /// The longest a snooze may hide a PR from the room's digest (`max_snooze_days`, default 7
    /// days); `default_snooze` is never longer.
    pub max_snooze: std::time::Duration,
    /// Chat users mapped to Bitbucket accounts.
    pub users: Vec<UserMapping>,
}

/// The defaults are those of `RawCommands`.
impl Default for CommandSettings {
    fn default() -> Self {
        RawCommands::default()
            .resolve()
            .expect("the defaults are valid")
    }
}

/// One person: their Bitbucket account (account_id, uuid, nickname or username) and their chat
/// names (HipChat mention name, Slack/Mattermost user id or name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserMapping {
    /// The Bitbucket account: `account_id`, `uuid`, nickname or username (on Data Center, also
    /// the e-mail address).
    pub bitbucket: String,
    /// The HipChat mention name (without `@`).
    pub hipchat: Option<String>,
    /// The Slack or Mattermost user id or name.
    pub slack: Option<String>,
    /// The Mattermost user id (26 characters, as `GET /api/v4/users/username/{name}` answers
    /// it): where a Mattermost direct message goes.
    pub mattermost: Option<String>,
    /// Their Google Chat user id (`users/123456789`, or the number alone), from the Google Chat
    /// API's `User.name` or the Admin console: a Google Chat room names them as a mention
    /// (`<users/123456789>`). Source: developers.google.com/workspace/chat/format-messages
    /// ("Mention users": `<users/{user}>`).
    pub google_chat: Option<String>,
    /// Their Microsoft Teams id for a mention in an Adaptive Card: the user principal name
    /// (usually their e-mail address) or the Microsoft Entra object id; unset: `email`.
    pub teams: Option<String>,
    /// The person's e-mail address: how Slack finds them when `slack` is not a user id
    /// (`users.lookupByEmail`), the recipient of a Teams workflow, and a HipChat user id.
    pub email: Option<String>,
    /// Their IANA time zone (`Europe/Berlin`); unset: the zone Slack gives for them, else
    /// `[sweep] timezone`.
    pub timezone: Option<String>,
    /// Local times (`HH:MM`) at which their queue is sent to them on their working days;
    /// unset or empty: no scheduled personal reminder (`/reviews remind` sets one).
    pub remind_at: Option<Vec<String>>,
    /// Their working days (`mon`..`sun`); unset: `[sweep] working_days`.
    pub working_days: Option<Vec<String>>,
    /// A date (`YYYY-MM-DD`, in their zone): no personal messages before it.
    pub away_until: Option<String>,
    /// Where their direct messages go: `slack`, `hipchat`, `mattermost`, `teams` or `off`;
    /// unset: the first of those they have an id for and that `[direct]` configures.
    pub direct: Option<String>,
}

/// A chat that can carry a direct message to one person (`[[users]] direct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DirectChat {
    /// Slack's Web API: `conversations.open`, then `chat.postMessage`.
    Slack,
    /// HipChat v2: `POST /v2/user/{id}/message`.
    HipChat,
    /// Mattermost API v4: `POST /api/v4/channels/direct`, then `POST /api/v4/posts`.
    Mattermost,
    /// A Teams Workflow that posts a card in a chat with the recipient.
    Teams,
}

impl DirectChat {
    /// Every direct chat, in the order the default rule tries them.
    pub const ALL: [DirectChat; 4] = [
        DirectChat::Slack,
        DirectChat::HipChat,
        DirectChat::Mattermost,
        DirectChat::Teams,
    ];

    /// The word the file and the database use: `slack`, `hipchat`, `mattermost`, `teams`.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectChat::Slack => "slack",
            DirectChat::HipChat => "hipchat",
            DirectChat::Mattermost => "mattermost",
            DirectChat::Teams => "teams",
        }
    }

    /// The chat a word names (`None` for anything else, `off` included).
    pub fn parse(word: &str) -> Option<DirectChat> {
        DirectChat::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(word.trim()))
    }
}

impl UserMapping {
    /// Their time zone from the file, if set (validated at load).
    pub fn tz(&self) -> Option<chrono_tz::Tz> {
        self.timezone.as_deref().and_then(|t| t.trim().parse().ok())
    }

    /// Their `remind_at` times from the file (validated at load), earliest first.
    pub fn remind_times(&self) -> Vec<chrono::NaiveTime> {
        let mut times: Vec<chrono::NaiveTime> = self
            .remind_at
            .iter()
            .flatten()
            .filter_map(|t| parse_clock_time(t).ok())
            .collect();
        times.sort();
        times.dedup();
        times
    }

    /// Their working days from the file (validated at load), Monday first.
    pub fn working_day_mask(&self) -> Option<[bool; 7]> {
        self.working_days
            .as_deref()
            .and_then(|d| parse_working_days(d).ok())
    }

    /// Their `away_until` date from the file (validated at load).
    pub fn away_date(&self) -> Option<chrono::NaiveDate> {
        self.away_until.as_deref().and_then(|d| parse_date(d).ok())
    }

    /// Whether they have what `chat` needs to find them: a Slack user id or an e-mail address
    /// (Slack), a HipChat mention name or e-mail address (HipChat), a Mattermost user id, an
    /// e-mail address (Teams).
    pub fn reachable_on(&self, chat: DirectChat) -> bool {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
        match chat {
            DirectChat::Slack => {
                self.slack.as_deref().is_some_and(is_slack_user_id) || set(&self.email)
            }
            DirectChat::HipChat => set(&self.hipchat) || set(&self.email),
            DirectChat::Mattermost => set(&self.mattermost),
            DirectChat::Teams => set(&self.email),
        }
    }

    /// Where the file sends their direct messages: `direct` when it names a chat (`None` for
    /// `off`), else the first chat `direct` configures that they can be found on.
    pub fn direct_chat(&self, direct: &DirectSettings) -> Option<DirectChat> {
        match self.direct.as_deref().map(str::trim) {
            Some(word) if word.eq_ignore_ascii_case("off") => None,
            Some(word) => DirectChat::parse(word),
            None => self.default_chat(direct),
        }
    }

    /// The first chat `direct` configures that they can be found on (the default rule).
    pub fn default_chat(&self, direct: &DirectSettings) -> Option<DirectChat> {
        DirectChat::ALL
            .into_iter()
            .find(|c| direct.configured(*c) && self.reachable_on(*c))
    }
}

/// Whether `id` is a Slack user id (`U...` or `W...`, upper-case letters and digits), as
/// `conversations.open` takes it, rather than a name.
pub fn is_slack_user_id(id: &str) -> bool {
    let id = id.trim();
    id.len() >= 9
        && (id.starts_with('U') || id.starts_with('W'))
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// `09:30` (24-hour `HH:MM`) as a time of day.
pub fn parse_clock_time(text: &str) -> Result<chrono::NaiveTime, String> {
    chrono::NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| format!("`{text}` is not a time of day such as 09:30 (24-hour HH:MM)"))
}

/// `2027-01-04` as a date.
pub fn parse_date(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date such as 2027-01-04 (YYYY-MM-DD)"))
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
    /// Time zone, working days and quiet hours (`timezone`, `working_days`, `quiet_hours`).
    pub calendar: crate::domain::calendar::Calendar,
    /// Post "all clear" when nothing is pending (off: say nothing).
    pub all_clear: bool,
    /// Built-in schedule (cron, 5 or 6 fields, in `calendar.tz`) for those who run only the binary.
    pub schedule: Option<String>,
    /// After a digest to a HipChat room that names reviewers by their mention names, post a short
    /// text message with the `@mentions` (HipChat pings only in `message_format: text`).
    pub hipchat_mention_ping: bool,
}

/// The defaults are those of `RawSweep`.
impl Default for SweepSettings {
    fn default() -> Self {
        RawSweep::default()
            .resolve()
            .expect("the defaults are valid")
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
    /// A HipChat v2 room notification URL without `auth_token`, and the room's token, sent as
    /// `Authorization: Bearer` (Atlassian's HipChat REST docs allow either form).
    HipChatBearer {
        /// `https://host/v2/room/{id_or_name}/notification`.
        url: SecretString,
        /// The room notification token.
        token: SecretString,
    },
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
    Slack(SecretString),
    /// A Microsoft Teams Workflows "when a webhook request is received" URL (its `sig` query
    /// parameter is the secret); takes an Adaptive Card message, answers 202.
    Teams(SecretString),
    /// A Google Chat space's incoming webhook URL (its `key` and `token` parameters are the
    /// secret); takes `{"text": ...}`, at most 32,000 bytes, 60 messages a minute per space.
    GoogleChat(SecretString),
    /// A Slack channel through the Web API (`slack_channel`): one message per PR, posted with
    /// `chat.postMessage` and edited with `chat.update` as the PR changes (a "living message").
    SlackApi {
        /// The channel's ID (`C0123...`), as Slack's URLs and "Copy link" show it.
        channel: String,
        /// The Web API base (`[direct] slack_api_url`), without a trailing slash.
        api_url: String,
        /// The bot token (`[direct] slack_bot_token`), sent as `Authorization: Bearer`.
        token: SecretString,
    },
    /// Printed to standard output (no chat configured).
    Console,
}

impl Sink {
    /// Messages per minute a room of this kind gets unless `room_rate_per_minute` says otherwise:
    /// HipChat 30 (its flood control: 30 a minute per room), Slack-compatible 60 (about one a
    /// second per webhook), Teams 30 (a Workflow is a Power Automate flow, throttled well above
    /// that), Google Chat 30 (60 a minute per space, shared by every app posting there), console
    /// unlimited (`None`).
    pub fn default_rate_per_minute(&self) -> Option<u32> {
        match self {
            Sink::HipChat(_) | Sink::HipChatBearer { .. } => Some(30),
            // chat.postMessage: about one message a second per channel
            // (docs.slack.dev/reference/methods/chat.postMessage, "Rate limiting").
            Sink::Slack(_) | Sink::SlackApi { .. } => Some(60),
            Sink::Teams(_) | Sink::GoogleChat(_) => Some(30),
            Sink::Console => None,
        }
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::HipChat(url) => write!(f, "hipchat {}", redact_url(url.expose_secret())),
            Sink::HipChatBearer { url, .. } => write!(
                f,
                "hipchat {} (bearer token)",
                redact_url(url.expose_secret())
            ),
            Sink::Slack(url) => write!(f, "slack {}", redact_url(url.expose_secret())),
            Sink::Teams(url) => write!(f, "teams {}", redact_url(url.expose_secret())),
            Sink::GoogleChat(url) => {
                write!(f, "google chat {}", redact_url(url.expose_secret()))
            }
            Sink::SlackApi {
                channel, api_url, ..
            } => write!(
                f,
                "slack channel {channel} through {} (bot token)",
                redact_url(api_url)
            ),
            Sink::Console => f.write_str("console"),
        }
    }
}

/// What `check-config` shows in place of a secret. A file holding it (`check-config`'s output
/// fed back) is read, but nothing but `check-config` runs on it: see `Settings::placeholder`.
pub const REDACTED: &str = "[redacted]";

/// `https://host:port/[redacted]`: enough to recognise the service (its host and any port
/// other than the scheme's), nothing that authenticates (path and query may hold tokens).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}{}/{REDACTED}",
            parsed.scheme(),
            parsed.host_str().unwrap_or("?"),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => REDACTED.into(),
    }
}

/// Whether a configured secret is `check-config`'s placeholder rather than a secret: the
/// placeholder itself, or a URL whose secret part it stands for (`https://host/[redacted]`,
/// `postgres://user:[redacted]@host/db`).
fn is_placeholder(secret: &str) -> bool {
    let secret = secret.trim();
    secret == REDACTED || secret.ends_with(&format!("/{REDACTED}")) || {
        let lower = secret.to_ascii_lowercase();
        (lower.starts_with("postgres://") || lower.starts_with("postgresql://"))
            && (secret.contains(&format!(":{REDACTED}@"))
                || secret.contains(&format!("password={REDACTED}")))
    }
}

/// A named chat room (`[[rooms]]`) that routes send to.
#[derive(Debug, Clone)]
pub struct Room {
    /// The name routes refer to (`room = "..."`).
    pub name: String,
    /// Where its messages go.
    pub sink: Sink,
}

/// Chat notifications: where they go and how they are delivered (`[notify]`, `[[rooms]]`,
/// `[[routes]]`).
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Every configured room; with none, one from `PR_REMINDER_HIPCHAT_URL` or
    /// `PR_REMINDER_SLACK_WEBHOOK_URL`, else the console.
    pub rooms: Vec<Room>,
    /// Which repositories are announced in which room; first match wins.
    pub routes: Vec<Route>,
    /// Events for one PR within this window become one message showing the latest state.
    pub coalesce: std::time::Duration,
    /// Attempts before a message is marked failed.
    pub max_attempts: u32,
    /// Per HTTP request to the chat server.
    pub timeout: std::time::Duration,
    /// First retry delay; doubles (with jitter) up to `retry_max`.
    pub retry_min: std::time::Duration,
    /// The longest delay between retries.
    pub retry_max: std::time::Duration,
    /// Most messages per minute to one room, for every room; `None`: each kind of room's own
    /// default (`Sink::default_rate_per_minute`).
    pub room_rate_per_minute: Option<u32>,
}

impl NotifySettings {
    /// The rooms that keep one message per PR and edit it (`slack_channel` rooms): what
    /// `Routing::with_final_edits` takes.
    pub fn editing_rooms(&self) -> Vec<String> {
        self.rooms
            .iter()
            .filter(|r| matches!(r.sink, Sink::SlackApi { .. }))
            .map(|r| r.name.clone())
            .collect()
    }
}

/// The defaults are those of `RawNotify`: everything to one console room.
impl Default for NotifySettings {
    fn default() -> Self {
        RawNotify::default()
            .resolve()
            .expect("the defaults are valid")
    }
}

impl Settings {
    /// Defaults with signature checking off; for tests and embedding. `load` is the real entry.
    pub fn with_defaults(signature: SignaturePolicy) -> Self {
        Settings {
            signature,
            ..RawSettings::default()
                .resolve(&[])
                .expect("the defaults are valid")
        }
    }

    /// Reads the file (if given) and the environment, then validates.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        insecure_flag: bool,
    ) -> Result<Settings, ConfigError> {
        // Layer 0, the defaults, are the serde defaults of `RawSettings`.
        let mut layers = Figment::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
            })?;
            // The file alone first: toml names the line of a syntax error, a wrong type or an
            // unknown key (and shows no source line, which may hold a secret). Figment's
            // merged values no longer know their line.
            // serde_path_to_error names the key of a wrong type (toml's message alone does not).
            serde_path_to_error::deserialize::<_, RawSettings>(toml::Deserializer::new(&text))
                .map_err(|e| {
                    let key = e.path().to_string();
                    let inner = e.into_inner();
                    let file = path.display().to_string();
                    let place = describe_span(&text, inner.span());
                    let last = key.rsplit('.').next().unwrap_or_default();
                    // "unknown field `x`" names its key already.
                    let named = last.is_empty()
                        || key == "."
                        || inner.message().contains(&format!("`{last}`"));
                    let key = if named {
                        file
                    } else {
                        format!("{file}: {key}")
                    };
                    ConfigError::new(key, inner.message().to_owned() + &place)
                })?;
            layers = layers.merge(Toml::string(&text));
        }
        let mut shortcuts = Vec::new();
        for &(var, path, kind) in ENV_VARS {
            match (env.get(var), kind) {
                (None, _) => {}
                (Some(url), Kind::Room(sink)) => shortcuts.push(Shortcut {
                    var,
                    room: path,
                    sink,
                    url,
                }),
                (Some(text), kind) => {
                    layers = layers.merge(Serialized::default(path, kind.parse(var, text)?));
                }
            }
        }
        let mut raw: RawSettings = layers.extract().map_err(layer_error)?;
        let raw_sites = std::mem::take(&mut raw.bitbucket);

        let secrets = raw.webhook_secret.secrets();
        let insecure = insecure_flag || raw.insecure_skip_signature;
        // What ends demo mode: a file, or a setting's variable with a value (an empty one is
        // compose's `${VAR:-}`, not a setting). Named in the error below.
        let mut configured_by: Vec<String> = file
            .map(|f| format!("--config {}", f.display()))
            .into_iter()
            .collect();
        let mut known: Vec<&String> = env
            .iter()
            .filter(|(k, v)| is_setting_variable(k) && !v.trim().is_empty())
            .map(|(k, _)| k)
            .collect();
        known.sort();
        configured_by.extend(known.into_iter().cloned());
        let mut settings = raw.resolve(&shortcuts)?;
        settings.bitbucket = sites::resolve_sites(raw_sites, env)?;
        settings.signature = if !secrets.is_empty() {
            SignaturePolicy::Verify(secrets)
        } else if insecure {
            SignaturePolicy::Insecure
        } else if !settings.bitbucket.is_empty() {
            // Poll-only: state comes from polling alone, so every site polls.
            for site in &mut settings.bitbucket {
                site.poll_interval
                    .get_or_insert(std::time::Duration::from_secs_f64(
                        sites::POLL_ONLY_DEFAULT_MINUTES * 60.0,
                    ));
            }
            SignaturePolicy::PollOnly
        } else if configured_by.is_empty() && settings.listen.ip().is_loopback() {
            SignaturePolicy::Demo
        } else {
            let why = if configured_by.is_empty() {
                format!("it listens on {}, not on loopback", settings.listen)
            } else {
                format!("configuration was found: {}", configured_by.join(", "))
            };
            return Err(ConfigError::at(
                "webhook_secret",
                format!(
                    "not set: deliveries could not be verified. Set the secret you entered in \
                     Bitbucket, or PR_REMINDER_INSECURE_SKIP_SIGNATURE=1 to accept unsigned \
                     ones (demo mode, which accepts them on loopback, is off because {why})"
                ),
            ));
        };
        Ok(settings)
    }

    /// The `PR_REMINDER_*` variables in `env` that are no setting of ours (a typo such as
    /// `PR_REMINDER_WEBHOOK_SECRETS`): ignored, and worth a warning at start. The repository's
    /// own tools' variables (`PR_REMINDER_TEST_*` and `PR_REMINDER_PG_*` of the tests'
    /// PostgreSQL, `PR_REMINDER_BIN`, `PR_REMINDER_SHARED_FIXTURES`) are not settings either,
    /// but no typo: a service started from a test or a benchmark inherits them.
    pub fn unknown_variables(env: &HashMap<String, String>) -> Vec<String> {
        let tooling = |k: &str| {
            k.starts_with("PR_REMINDER_TEST_")
                || k.starts_with("PR_REMINDER_PG_")
                || matches!(k, "PR_REMINDER_BIN" | "PR_REMINDER_SHARED_FIXTURES")
                // `--config` (read by the command line, not a setting).
                || k == "PR_REMINDER_CONFIG"
        };
        let mut unknown: Vec<String> = env
            .keys()
            .filter(|k| k.starts_with(ENV_PREFIX) && !is_setting_variable(k) && !tooling(k))
            .cloned()
            .collect();
        unknown.sort();
        unknown
    }

    /// The settings as `check-config` prints them: a TOML file that `--config` reads back into
    /// the same settings (under the same `PR_REMINDER_*` variables), every secret shown as
    /// `"[redacted]"` (a URL keeps its scheme, host and port), explanations as comments. What
    /// is unset is a comment saying so; the rooms an environment variable added are comments
    /// too (the variable adds them again).
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# pr-reminder's effective settings: the defaults, then the --config file, then the\n\
             # PR_REMINDER_* variables. Read back with --config, this file gives the same settings\n\
             # (under the same variables). Secrets are shown as \"[redacted]\": pr-reminder runs\n\
             # nothing but check-config on a file holding one until the secret is put back (or\n\
             # its PR_REMINDER_* variable, which wins over the file, is set).\n",
        );
        out.push_str(&format!("# Webhook signatures: {:?}.\n\n", self.signature));
        let secret = |set: bool, unset: &str, key: &str| -> String {
            if set {
                format!("{key} = {}\n", toml_str(REDACTED))
            } else {
                format!("# {key}: not set{unset}\n")
            }
        };
        out.push_str(&format!(
            "listen = {}\n",
            toml_str(&self.listen.to_string())
        ));
        out.push_str(&format!(
            "database = {}\n",
            toml_str(&self.database.redacted())
        ));
        match &self.signature {
            SignaturePolicy::Verify(list) if list.len() == 1 => {
                out.push_str(&format!("webhook_secret = {}\n", toml_str(REDACTED)))
            }
            SignaturePolicy::Verify(list) => out.push_str(&format!(
                "webhook_secret = {} # {} secrets (a rotation)\n",
                toml_list(list.iter().map(|_| REDACTED)),
                list.len()
            )),
            _ => out.push_str("# webhook_secret: not set\n"),
        }
        out.push_str(&format!(
            "insecure_skip_signature = {}\n",
            matches!(self.signature, SignaturePolicy::Insecure)
        ));
        out.push_str(&format!(
            "required_approvals = {}\nmax_body_bytes = {}\nbody_timeout_seconds = {}\n",
            self.required_approvals,
            self.max_body_bytes,
            toml_number(self.body_timeout.as_secs_f64())
        ));
        out.push_str(&format!(
            "synchronous = {}{}\n",
            toml_str(&self.synchronous),
            if self.database.is_postgres() {
                " # SQLite only: PostgreSQL's durability is the server's synchronous_commit"
            } else {
                ""
            }
        ));
        out.push_str(&format!(
            "max_batch = {}\nlog_format = {}\n",
            self.max_batch,
            toml_str(match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            })
        ));

        let n = &self.notify;
        out.push_str(&format!(
            "\n[notify]\ncoalesce_seconds = {}\nmax_attempts = {}\ntimeout_seconds = {}\n\
             retry_min_ms = {}\nretry_max_seconds = {}\n",
            toml_number(n.coalesce.as_secs_f64()),
            n.max_attempts,
            toml_number(n.timeout.as_secs_f64()),
            n.retry_min.as_millis(),
            n.retry_max.as_secs(),
        ));
        out.push_str(&match n.room_rate_per_minute {
            Some(rate) => format!("room_rate_per_minute = {rate}\n"),
            None => "# room_rate_per_minute: not set: each kind of room's own (a minute: HipChat \
                     30, Slack 60, Teams 30, Google Chat 30)\n"
                .to_owned(),
        });

        let sw = &self.sweep;
        out.push_str("\n[sweep]\n");
        out.push_str(&secret(
            sw.token.is_some(),
            ": POST /sweep and POST /reconcile answer 403",
            "token",
        ));
        out.push_str(&format!(
            "min_interval_minutes = {}\nescalate_after_hours = {}\n\
             escalate_working_days_only = {}\ntimezone = {}\nworking_days = {}\n",
            toml_number(sw.min_interval.as_secs_f64() / 60.0),
            toml_number(sw.escalate_after.as_secs_f64() / 3600.0),
            sw.escalate_working_days_only,
            toml_str(sw.calendar.tz.name()),
            toml_list(
                ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                    .iter()
                    .zip(sw.calendar.working_days)
                    .filter(|(_, on)| *on)
                    .map(|(d, _)| *d)
            ),
        ));
        out.push_str(&match sw.calendar.quiet_hours {
            Some((from, to)) => format!(
                "quiet_hours = {}\n",
                toml_str(&format!("{}-{}", from.format("%H:%M"), to.format("%H:%M")))
            ),
            None => "# quiet_hours: not set (scheduled sweeps post at any hour)\n".to_owned(),
        });
        out.push_str(&format!("all_clear = {}\n", sw.all_clear));
        out.push_str(&match &sw.schedule {
            Some(schedule) => format!("schedule = {}\n", toml_str(schedule)),
            None => "# schedule: not set (no built-in schedule: digests are posted only when \
                     POST /sweep or pr-reminder sweep is called)\n"
                .to_owned(),
        });
        out.push_str(&format!(
            "hipchat_mention_ping = {}\n",
            sw.hipchat_mention_ping
        ));

        let c = &self.commands;
        out.push_str("\n[commands]\n");
        out.push_str(&secret(
            c.hipchat_token.is_some(),
            ": HipChat's /reviews is off",
            "hipchat_token",
        ));
        out.push_str(&secret(
            c.slack_signing_secret.is_some(),
            "",
            "slack_signing_secret",
        ));
        out.push_str(&secret(
            c.mattermost_token.is_some(),
            "",
            "mattermost_token",
        ));
        out.push_str(&format!(
            "default_snooze_hours = {}\nmax_snooze_days = {}\n",
            toml_number(c.default_snooze.as_secs_f64() / 3600.0),
            toml_number(c.max_snooze.as_secs_f64() / 86_400.0),
        ));

        let d = &self.direct;
        out.push_str("\n[direct]\n");
        out.push_str(&secret(
            d.slack_bot_token.is_some(),
            ": no room may have a slack_channel",
            "slack_bot_token",
        ));
        // Scheme and host only, unless it is the default: a path may hold a proxy's token.
        let api_url = if d.slack_api_url == SLACK_API_URL {
            d.slack_api_url.clone()
        } else {
            redact_url(&d.slack_api_url)
        };
        out.push_str(&format!("slack_api_url = {}\n", toml_str(&api_url)));
        out.push_str(&match &d.hipchat_url {
            Some(url) => format!("hipchat_url = {}\n", toml_str(&shown_base(url))),
            None => "# hipchat_url: not set: no HipChat direct messages\n".to_owned(),
        });
        out.push_str(&secret(d.hipchat_token.is_some(), "", "hipchat_token"));
        out.push_str(&match &d.mattermost_url {
            Some(url) => format!("mattermost_url = {}\n", toml_str(&shown_base(url))),
            None => "# mattermost_url: not set: no Mattermost direct messages\n".to_owned(),
        });
        out.push_str(&secret(
            d.mattermost_token.is_some(),
            "",
            "mattermost_token",
        ));
        out.push_str(&match &d.teams_workflow_url {
            Some(url) => format!(
                "teams_workflow_url = {}\n",
                toml_str(&redact_url(url.expose_secret()))
            ),
            None => "# teams_workflow_url: not set: no Teams direct messages\n".to_owned(),
        });

        let m = &self.monitoring;
        out.push_str("\n[monitoring]\n");
        out.push_str(&secret(
            m.metrics_token.is_some(),
            ": GET /metrics is open",
            "metrics_token",
        ));
        out.push_str(&secret(
            m.status_token.is_some(),
            if matches!(self.signature, SignaturePolicy::Demo) {
                ": GET /status is open (demo mode)"
            } else {
                ": GET /status is off"
            },
            "status_token",
        ));
        out.push_str(&format!(
            "webhook_silence_days = {}\n",
            toml_number(m.webhook_silence.as_secs_f64() / 86_400.0)
        ));

        let a = &self.analytics;
        out.push_str("\n[analytics]\n");
        out.push_str(&format!("working_hours_only = {}\n", a.working_hours_only));
        out.push_str(&format!("window_days = {}\n", a.window.num_days()));
        out.push_str(&match a.weekly_report {
            Some((day, time)) => format!(
                "weekly_report = {}\n",
                toml_str(&format!(
                    "{} {}",
                    day.to_string().to_ascii_lowercase(),
                    time.format("%H:%M")
                ))
            ),
            None => "# weekly_report: not set: no weekly report\n".to_owned(),
        });
        out.push_str(&match &a.page_url {
            Some(url) => format!("page_url = {}\n", toml_str(url)),
            None => "# page_url: not set: the weekly report does not link to the page\n".to_owned(),
        });
        let r = &self.retention;
        out.push_str("\n[retention]\n");
        let days = |d: &Option<chrono::Duration>| d.map_or(0, |d| d.num_days());
        out.push_str(&format!("deliveries_days = {}\n", days(&r.deliveries)));
        out.push_str(&format!("outbox_days = {}\n", days(&r.outbox)));
        out.push_str(&format!(
            "closed_pull_requests_days = {}\n",
            days(&r.closed_pull_requests)
        ));

        // The rooms and routes the file gave (or would give): not the console default, not
        // those an environment variable adds.
        let from_env = |room: &str| {
            self.rooms_from_environment
                .iter()
                .find(|(name, _)| name == room)
                .map(|(_, var)| *var)
        };
        let console_only = matches!(&n.rooms[..], [room] if matches!(room.sink, Sink::Console));
        if console_only {
            out.push_str(
                "\n# [[rooms]]: none: messages are printed to standard output (the console room)\n",
            );
        }
        for room in n.rooms.iter().filter(|_| !console_only) {
            if let Some(var) = from_env(&room.name) {
                out.push_str(&format!(
                    "\n# room {}: {:?}, from {var} (for every repository no route claims)\n",
                    toml_str(&room.name),
                    room.sink
                ));
                continue;
            }
            out.push_str(&format!("\n[[rooms]]\nname = {}\n", toml_str(&room.name)));
            let redacted = |url: &SecretString| toml_str(&redact_url(url.expose_secret()));
            out.push_str(&match &room.sink {
                Sink::HipChat(url) => format!("hipchat_url = {}\n", redacted(url)),
                Sink::HipChatBearer { url, .. } => format!(
                    "hipchat_url = {}\nhipchat_token = {}\n",
                    redacted(url),
                    toml_str(REDACTED)
                ),
                Sink::Slack(url) => format!("slack_webhook_url = {}\n", redacted(url)),
                Sink::Teams(url) => format!("teams_webhook_url = {}\n", redacted(url)),
                Sink::GoogleChat(url) => format!("google_chat_webhook_url = {}\n", redacted(url)),
                Sink::SlackApi { channel, .. } => format!(
                    "slack_channel = {} # through the Web API, with [direct] slack_bot_token\n",
                    toml_str(channel)
                ),
                Sink::Console => "# the console\n".to_owned(),
            });
        }
        let environment_route = |route: &Route| {
            route.repositories == ["*"]
                && matches!(&route.rooms[..], [room] if from_env(room).is_some())
        };
        for route in n
            .routes
            .iter()
            .filter(|r| !console_only && !environment_route(r))
        {
            out.push_str(&format!(
                "\n[[routes]]\nrepositories = {}\n",
                toml_list(&route.repositories)
            ));
            out.push_str(&match &route.rooms[..] {
                [one] => format!("room = {}\n", toml_str(one)),
                several => format!("rooms = {}\n", toml_list(several)),
            });
            out.push_str(&match route.required_approvals {
                Some(n) => format!("required_approvals = {n}\n"),
                None => format!(
                    "# required_approvals: not set (the global {})\n",
                    self.required_approvals
                ),
            });
            out.push_str(&format!(
                "approvals_after_last_push = {}\nroom_reminders = {}\n",
                route.approvals_after_last_push, route.room_reminders
            ));
            let a = &route.announce;
            out.push_str(&format!(
                "announce_opened = {}\nannounce_approvals = {}\nannounce_changes_requested = {}\n\
                 announce_builds = {}\nannounce_merged = {}\nannounce_declined = {}\n\
                 ignore_title_patterns = {}\n",
                a.opened,
                a.approvals,
                a.changes_requested,
                a.builds,
                a.merged,
                a.declined,
                toml_list(&route.ignore_title_patterns)
            ));
        }
        for user in &c.users {
            out.push_str(&format!(
                "\n[[users]]\nbitbucket = {}\n",
                toml_str(&user.bitbucket)
            ));
            for (key, value) in [("hipchat", &user.hipchat), ("slack", &user.slack)] {
                out.push_str(&match value {
                    Some(value) => format!("{key} = {}\n", toml_str(value)),
                    None => format!("# {key}: not set\n"),
                });
            }
            // The direct-message keys only when set: a file without them reads back the same.
            for (key, value) in [
                ("mattermost", &user.mattermost),
                ("google_chat", &user.google_chat),
                ("teams", &user.teams),
                ("email", &user.email),
                ("timezone", &user.timezone),
                ("away_until", &user.away_until),
                ("direct", &user.direct),
            ] {
                if let Some(value) = value {
                    out.push_str(&format!("{key} = {}\n", toml_str(value)));
                }
            }
            for (key, value) in [
                ("remind_at", &user.remind_at),
                ("working_days", &user.working_days),
            ] {
                if let Some(list) = value {
                    out.push_str(&format!("{key} = {}\n", toml_list(list)));
                }
            }
        }
        out.push_str(&sites::render(&self.bitbucket));
        out
    }

    /// The first secret that is `check-config`'s placeholder, `"[redacted]"` (its output fed
    /// back as a file), as the error every command but `check-config` exits with: such a file
    /// says which settings there are, not the secrets to run with.
    pub fn placeholder(&self) -> Option<ConfigError> {
        let mut keys: Vec<String> = Vec::new();
        if let SignaturePolicy::Verify(list) = &self.signature {
            if list.iter().any(|s| is_placeholder(s.expose_secret())) {
                keys.push("webhook_secret".into());
            }
        }
        if let Database::Postgres(url) = &self.database {
            if is_placeholder(url.expose_secret()) {
                keys.push("database".into());
            }
        }
        let tokens = [
            ("sweep.token", &self.sweep.token),
            ("commands.hipchat_token", &self.commands.hipchat_token),
            (
                "commands.slack_signing_secret",
                &self.commands.slack_signing_secret,
            ),
            ("commands.mattermost_token", &self.commands.mattermost_token),
            ("monitoring.metrics_token", &self.monitoring.metrics_token),
            ("monitoring.status_token", &self.monitoring.status_token),
            ("direct.slack_bot_token", &self.direct.slack_bot_token),
            ("direct.hipchat_token", &self.direct.hipchat_token),
            ("direct.mattermost_token", &self.direct.mattermost_token),
        ];
        if is_placeholder(&self.direct.slack_api_url) {
            keys.push("direct.slack_api_url".into());
        }
        for (key, token) in tokens {
            if token
                .as_ref()
                .is_some_and(|t| is_placeholder(t.0.expose_secret()))
            {
                keys.push(key.into());
            }
        }
        if self
            .direct
            .teams_workflow_url
            .as_ref()
            .is_some_and(|url| is_placeholder(url.expose_secret()))
        {
            keys.push("direct.teams_workflow_url".into());
        }
        for (i, room) in self.notify.rooms.iter().enumerate() {
            let (key, url, token) = match &room.sink {
                Sink::HipChat(url) => ("hipchat_url", url, None),
                Sink::HipChatBearer { url, token } => ("hipchat_url", url, Some(token)),
                Sink::Slack(url) => ("slack_webhook_url", url, None),
                Sink::Teams(url) => ("teams_webhook_url", url, None),
                Sink::GoogleChat(url) => ("google_chat_webhook_url", url, None),
                // Its token is `direct.slack_bot_token`, checked above.
                Sink::SlackApi { .. } | Sink::Console => continue,
            };
            if is_placeholder(url.expose_secret()) {
                keys.push(format!("rooms[{i}].{key}"));
            }
            if token.is_some_and(|t| is_placeholder(t.expose_secret())) {
                keys.push(format!("rooms[{i}].hipchat_token"));
            }
        }
        for (i, site) in self.bitbucket.iter().enumerate() {
            let token = match &site.credentials {
                Credentials::Bearer(token) | Credentials::Basic { token, .. } => token,
            };
            if is_placeholder(token.0.expose_secret()) {
                keys.push(format!("bitbucket[{i}].token"));
            }
        }
        let first = keys.first()?;
        let more = match keys.len() {
            1 => String::new(),
            n => format!(" (and {} more: {})", n - 1, keys[1..].join(", ")),
        };
        Some(ConfigError::at(
            first,
            format!(
                "is \"{REDACTED}\", the placeholder check-config prints for a secret: put the \
                 secret itself there, or set its variable{more}"
            ),
        ))
    }
}

/// A TOML string, quoted and escaped.
fn toml_str(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A TOML array of strings.
fn toml_list<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    toml::Value::Array(
        items
            .into_iter()
            .map(|s| toml::Value::String(s.as_ref().to_owned()))
            .collect(),
    )
    .to_string()
}

/// A number as the file writes it: `30`, or `0.2` (the shortest text that reads back the same).
fn toml_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
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
    /// The file key (`notify.max_attempts`), with the environment variable when it came from one.
    pub key: String,
    /// What is wrong with the value.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// A bad value of the setting at `path`, with the variable that lands there if there is
    /// one: `sweep.token (PR_REMINDER_SWEEP_TOKEN)`.
    fn at(path: &str, message: impl Into<String>) -> Self {
        let var = ENV_VARS
            .iter()
            .find(|(_, p, kind)| *p == path && !matches!(kind, Kind::Room(_)));
        match var {
            Some((var, _, _)) => Self::new(format!("{path} ({var})"), message),
            None => Self::new(path, message),
        }
    }
}

/// Every `PR_REMINDER_*` variable and the file key it overrides: the one place a variable is
/// named (an error at that key names it too: `sweep.token (PR_REMINDER_SWEEP_TOKEN)`).
#[rustfmt::skip]
const ENV_VARS: &[(&str, &str, Kind)] = &[
    ("PR_REMINDER_LISTEN",                  "listen",                        Kind::Text),
    ("PR_REMINDER_DATABASE",                "database",                      Kind::Text),
    // A comma-separated list, as a single string in the file is.
    ("PR_REMINDER_WEBHOOK_SECRET",          "webhook_secret",                Kind::Text),
    ("PR_REMINDER_REQUIRED_APPROVALS",      "required_approvals",            Kind::Whole),
    ("PR_REMINDER_INSECURE_SKIP_SIGNATURE", "insecure_skip_signature",       Kind::Bool),
    ("PR_REMINDER_MAX_BODY_BYTES",          "max_body_bytes",                Kind::Whole),
    ("PR_REMINDER_SYNCHRONOUS",             "synchronous",                   Kind::Text),
    ("PR_REMINDER_MAX_BATCH",               "max_batch",                     Kind::Whole),
    ("PR_REMINDER_LOG_FORMAT",              "log_format",                    Kind::OneOf(&["text", "json"])),
    ("PR_REMINDER_SWEEP_TOKEN",             "sweep.token",                   Kind::Text),
    ("PR_REMINDER_COMMAND_TOKEN",           "commands.hipchat_token",        Kind::Text),
    ("PR_REMINDER_SLACK_SIGNING_SECRET",    "commands.slack_signing_secret", Kind::Text),
    ("PR_REMINDER_MATTERMOST_TOKEN",        "commands.mattermost_token",     Kind::Text),
    ("PR_REMINDER_METRICS_TOKEN",           "monitoring.metrics_token",      Kind::Text),
    ("PR_REMINDER_STATUS_TOKEN",            "monitoring.status_token",       Kind::Text),
    ("PR_REMINDER_SLACK_BOT_TOKEN",         "direct.slack_bot_token",        Kind::Text),
    ("PR_REMINDER_SLACK_API_URL",           "direct.slack_api_url",          Kind::Text),
    // Not file keys: one more room, of this name, for every repository no route claims.
    ("PR_REMINDER_HIPCHAT_URL",             "hipchat",                       Kind::Room(Sink::HipChat)),
    ("PR_REMINDER_SLACK_WEBHOOK_URL",       "slack",                         Kind::Room(Sink::Slack)),
    ("PR_REMINDER_TEAMS_WEBHOOK_URL",       "teams",                         Kind::Room(Sink::Teams)),
    ("PR_REMINDER_GOOGLE_CHAT_WEBHOOK_URL", "google-chat",                   Kind::Room(Sink::GoogleChat)),
];

/// Whether `name` is one of the variables the settings read.
fn is_setting_variable(name: &str) -> bool {
    ENV_VARS.iter().any(|(var, _, _)| *var == name)
        || sites::SITE_ENV_VARS.iter().any(|(var, _)| *var == name)
}

/// How a variable's text becomes the value the file would hold.
#[derive(Clone, Copy)]
enum Kind {
    /// As is.
    Text,
    /// `12`: a bad one names the variable.
    Whole,
    /// 1/0, true/false, yes/no, on/off; empty is false.
    Bool,
    /// One of these words, any case.
    OneOf(&'static [&'static str]),
    /// A chat URL: not a file key but a room of its own (see `resolve_rooms`).
    Room(fn(SecretString) -> Sink),
}

impl Kind {
    fn parse(self, var: &str, text: &str) -> Result<Value, ConfigError> {
        let word = text.trim().to_ascii_lowercase();
        match self {
            // A room shortcut is read by the room-building code, not as a file key.
            Kind::Text | Kind::Room(_) => Ok(text.into()),
            Kind::Whole => word
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| ConfigError::new(var, format!("`{text}` is not a whole number"))),
            Kind::Bool => match word.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true.into()),
                "0" | "false" | "no" | "off" | "" => Ok(false.into()),
                _ => Err(ConfigError::new(
                    var,
                    format!("`{text}` is not a boolean (use 1/0, true/false)"),
                )),
            },
            Kind::OneOf(words) if words.contains(&word.as_str()) => Ok(word.into()),
            Kind::OneOf(words) => Err(ConfigError::new(
                var,
                format!("`{text}` is not one of {}", words.join(", ")),
            )),
        }
    }
}

/// `PR_REMINDER_HIPCHAT_URL` or `PR_REMINDER_SLACK_WEBHOOK_URL`, as it was set.
struct Shortcut<'a> {
    var: &'static str,
    room: &'static str,
    sink: fn(SecretString) -> Sink,
    url: &'a str,
}

/// Figment extracts what toml and `Kind::parse` already checked, so this is a mismatch between
/// the two. It names the key, and never the value (which may be a secret).
fn layer_error(e: figment::Error) -> ConfigError {
    let message = match e.kind {
        figment::error::Kind::InvalidType(_, expected) => format!("expected {expected}"),
        other => other.to_string(),
    };
    ConfigError::at(&e.path.join("."), message)
}

/// A table of the file: each key once, with its type and default (what an absent key, or an
/// absent table, means). Unknown keys are refused. Field order is the order toml lists them
/// in that error.
macro_rules! section {
    ($name:ident { $($(#[$doc:meta])* $key:ident: $ty:ty = $default:expr,)* }) => {
        #[derive(Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct $name {
            $($(#[$doc])* $key: $ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $($key: $default,)* }
            }
        }
    };
}

// The settings as the file spells them. The environment lands on the same keys (`ENV_VARS`),
// and `resolve` turns them into `Settings`, naming the key of a bad value.
section!(RawSettings {
    listen: String = DEFAULT_LISTEN.into(),
    database: String = DEFAULT_DATABASE.into(),
    webhook_secret: SecretList = SecretList::Many(Vec::new()),
    required_approvals: i64 = DEFAULT_REQUIRED_APPROVALS.into(),
    insecure_skip_signature: bool = false,
    max_body_bytes: i64 = DEFAULT_MAX_BODY_BYTES as i64,
    body_timeout_seconds: f64 = 10.0,
    synchronous: String = "full".into(),
    max_batch: i64 = 512,
    log_format: LogFormat = LogFormat::Text,
    notify: RawNotify = RawNotify::default(),
    sweep: RawSweep = RawSweep::default(),
    commands: RawCommands = RawCommands::default(),
    monitoring: RawMonitoring = RawMonitoring::default(),
    direct: RawDirect = RawDirect::default(),
    analytics: RawAnalytics = RawAnalytics::default(),
    retention: RawRetention = RawRetention::default(),
    users: Vec<UserMapping> = Vec::new(),
    /// Empty: everything goes to the console (or to the environment's room).
    rooms: Vec<RawRoom> = Vec::new(),
    routes: Vec<RawRoute> = Vec::new(),
    /// Bitbucket sites for reconciliation (`[[bitbucket]]`).
    bitbucket: Vec<sites::RawSite> = Vec::new(),
});

section!(RawNotify {
    coalesce_seconds: f64 = 30.0,
    max_attempts: i64 = 10,
    timeout_seconds: f64 = 10.0,
    retry_min_ms: i64 = 1000,
    retry_max_seconds: i64 = 300,
    room_rate_per_minute: Option<i64> = None,
});

section!(RawSweep {
    token: Option<String> = None,
    min_interval_minutes: f64 = 50.0,
    escalate_after_hours: f64 = 72.0,
    escalate_working_days_only: bool = false,
    /// The calendar's keys: unset keeps the domain's `Calendar::default()`.
    timezone: Option<String> = None,
    working_days: Option<Vec<String>> = None,
    quiet_hours: Option<String> = None,
    all_clear: bool = false,
    schedule: Option<String> = None,
    hipchat_mention_ping: bool = true,
});

section!(RawMonitoring {
    metrics_token: Option<String> = None,
    status_token: Option<String> = None,
    webhook_silence_days: f64 = 7.0,
});

section!(RawAnalytics {
    working_hours_only: bool = false,
    window_days: i64 = 28,
    weekly_report: Option<String> = None,
    page_url: Option<String> = None,
});

section!(RawRetention {
    deliveries_days: i64 = 90,
    outbox_days: i64 = 30,
    closed_pull_requests_days: i64 = 365,
});

impl RawAnalytics {
    fn resolve(self) -> Result<AnalyticsSettings, ConfigError> {
        let window = whole::<i64>("analytics.window_days", self.window_days, 1..=366)?;
        let weekly_report = match self.weekly_report.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                parse_weekly(text).map_err(|e| ConfigError::at("analytics.weekly_report", e))?,
            ),
        };
        let page_url = match self.page_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(base_url("analytics.page_url", url)?),
        };
        Ok(AnalyticsSettings {
            working_hours_only: self.working_hours_only,
            window: chrono::Duration::days(window),
            weekly_report,
            page_url,
        })
    }
}

/// `mon 09:00` → (Monday, 09:00); errors say what was expected.
pub fn parse_weekly(text: &str) -> Result<(chrono::Weekday, chrono::NaiveTime), String> {
    let expected = || format!("`{text}` is not a weekday and a time such as \"mon 09:00\"");
    let mut words = text.split_whitespace();
    let (Some(day), Some(time), None) = (words.next(), words.next(), words.next()) else {
        return Err(expected());
    };
    let day = match day.to_ascii_lowercase().as_str() {
        "mon" => chrono::Weekday::Mon,
        "tue" => chrono::Weekday::Tue,
        "wed" => chrono::Weekday::Wed,
        "thu" => chrono::Weekday::Thu,
        "fri" => chrono::Weekday::Fri,
        "sat" => chrono::Weekday::Sat,
        "sun" => chrono::Weekday::Sun,
        _ => return Err(expected()),
    };
    let time = chrono::NaiveTime::parse_from_str(time, "%H:%M").map_err(|_| expected())?;
    Ok((day, time))
}

impl RawRetention {
    fn resolve(self) -> Result<RetentionSettings, ConfigError> {
        let days = |path: &str, n: i64| -> Result<Option<chrono::Duration>, ConfigError> {
            let n = whole::<i64>(path, n, 0..=36_500)?;
            Ok((n > 0).then(|| chrono::Duration::days(n)))
        };
        Ok(RetentionSettings {
            deliveries: days("retention.deliveries_days", self.deliveries_days)?,
            outbox: days("retention.outbox_days", self.outbox_days)?,
            closed_pull_requests: days(
                "retention.closed_pull_requests_days",
                self.closed_pull_requests_days,
            )?,
        })
    }
}

section!(RawDirect {
    slack_bot_token: Option<String> = None,
    slack_api_url: String = SLACK_API_URL.into(),
    hipchat_url: Option<String> = None,
    hipchat_token: Option<String> = None,
    mattermost_url: Option<String> = None,
    mattermost_token: Option<String> = None,
    teams_workflow_url: Option<String> = None,
});

section!(RawCommands {
    hipchat_token: Option<String> = None,
    slack_signing_secret: Option<String> = None,
    mattermost_token: Option<String> = None,
    default_snooze_hours: f64 = 24.0,
    max_snooze_days: f64 = 7.0,
});

/// One secret or a list; in the environment, a comma-separated list.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "expected a string or a list of strings (the secret, or old and new while rotating)"
)]
enum SecretList {
    One(String),
    Many(Vec<String>),
}

impl SecretList {
    fn secrets(&self) -> Vec<SecretString> {
        let list: Vec<&str> = match self {
            SecretList::One(s) => s.split(',').collect(),
            SecretList::Many(list) => list.iter().map(String::as_str).collect(),
        };
        list.into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_owned()))
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoom {
    name: String,
    hipchat_url: Option<String>,
    /// With a `hipchat_url` that has no `auth_token`: sent as `Authorization: Bearer`.
    hipchat_token: Option<String>,
    slack_webhook_url: Option<String>,
    teams_webhook_url: Option<String>,
    google_chat_webhook_url: Option<String>,
    /// A Slack channel ID, posted to through the Web API with `[direct] slack_bot_token`.
    slack_channel: Option<String>,
}

/// Unset `announce_*` switches keep `Announce::default()`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    repositories: Vec<String>,
    /// One room, or several with `rooms`.
    room: Option<String>,
    rooms: Option<Vec<String>>,
    required_approvals: Option<i64>,
    approvals_after_last_push: Option<bool>,
    room_reminders: Option<bool>,
    announce_opened: Option<bool>,
    announce_approvals: Option<bool>,
    announce_changes_requested: Option<bool>,
    announce_builds: Option<bool>,
    announce_merged: Option<bool>,
    announce_declined: Option<bool>,
    ignore_title_patterns: Option<Vec<String>>,
}

impl RawSettings {
    /// Every setting but the signature policy (left `Demo`; `load` decides it last).
    fn resolve(self, shortcuts: &[Shortcut<'_>]) -> Result<Settings, ConfigError> {
        let RawSettings {
            listen,
            database,
            webhook_secret: _,
            required_approvals,
            insecure_skip_signature: _,
            max_body_bytes,
            body_timeout_seconds,
            synchronous,
            max_batch,
            log_format,
            notify,
            sweep,
            commands,
            monitoring,
            direct,
            analytics,
            retention,
            users,
            rooms,
            routes,
            bitbucket: _,
        } = self;
        let listen = listen.parse().map_err(|_| {
            ConfigError::at(
                "listen",
                format!("`{listen}` is not an address:port such as 127.0.0.1:8080"),
            )
        })?;
        let database = Database::parse(&database).map_err(|e| ConfigError::at("database", e))?;
        let required_approvals = whole("required_approvals", required_approvals, 1..=100)?;
        let max_body_bytes = whole("max_body_bytes", max_body_bytes, 1024..=64 * 1024 * 1024)?;
        let body_timeout = duration(
            "body_timeout_seconds",
            body_timeout_seconds,
            0.1..=60.0,
            1.0,
        )?;
        let synchronous = synchronous.trim().to_ascii_lowercase();
        if !matches!(synchronous.as_str(), "full" | "normal" | "extra") {
            return Err(ConfigError::at(
                "synchronous",
                format!("`{synchronous}` is not one of full, normal, extra"),
            ));
        }
        let max_batch = whole("max_batch", max_batch, 1..=10_000)?;
        let mut notify = notify.resolve()?;
        let sweep = sweep.resolve()?;
        let mut commands = commands.resolve()?;
        for (i, user) in users.iter().enumerate() {
            if user.bitbucket.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("users[{i}].bitbucket"),
                    "must not be empty",
                ));
            }
        }
        let analytics = analytics.resolve()?;
        let retention = retention.resolve()?;
        let direct = direct.resolve()?;
        for (i, user) in users.iter().enumerate() {
            check_user(i, user, &direct)?;
        }
        commands.users = users;
        let rooms_from_environment = resolve_rooms(rooms, routes, shortcuts, &direct, &mut notify)?;
        Ok(Settings {
            listen,
            database,
            signature: SignaturePolicy::Demo,
            required_approvals,
            max_body_bytes,
            body_timeout,
            synchronous,
            max_batch,
            log_format,
            notify,
            sweep,
            commands,
            bitbucket: Vec::new(),
            monitoring: MonitoringSettings {
                metrics_token: long_secret("monitoring.metrics_token", monitoring.metrics_token)?,
                status_token: long_secret("monitoring.status_token", monitoring.status_token)?,
                webhook_silence: duration(
                    "monitoring.webhook_silence_days",
                    monitoring.webhook_silence_days,
                    0.01..=365.0,
                    86_400.0,
                )?,
            },
            rooms_from_environment,
            direct,
            analytics,
            retention,
        })
    }
}

/// The direct-message keys of `[[users]]` entry `i`: each value readable, and a chat `direct`
/// names configured and able to find them.
fn check_user(i: usize, user: &UserMapping, direct: &DirectSettings) -> Result<(), ConfigError> {
    let key = |name: &str| format!("users[{i}].{name}");
    if let Some(zone) = &user.timezone {
        zone.trim().parse::<chrono_tz::Tz>().map_err(|_| {
            ConfigError::new(
                key("timezone"),
                format!("`{zone}` is not an IANA time zone such as Europe/Berlin"),
            )
        })?;
    }
    for time in user.remind_at.iter().flatten() {
        parse_clock_time(time).map_err(|e| ConfigError::new(key("remind_at"), e))?;
    }
    if let Some(days) = &user.working_days {
        parse_working_days(days).map_err(|e| ConfigError::new(key("working_days"), e))?;
    }
    if let Some(date) = &user.away_until {
        parse_date(date).map_err(|e| ConfigError::new(key("away_until"), e))?;
    }
    // Ids that go into a chat's markup (a mention) must be plain words: never markup themselves.
    let plain = |id: &str| {
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._%+@-".contains(c))
    };
    if let Some(id) = &user.google_chat {
        let bare = id.trim().strip_prefix("users/").unwrap_or(id.trim());
        if !plain(bare) {
            return Err(ConfigError::new(
                key("google_chat"),
                format!("`{id}` is not a Google Chat user id such as users/123456789"),
            ));
        }
    }
    if let Some(id) = &user.teams {
        if !plain(id.trim()) {
            return Err(ConfigError::new(
                key("teams"),
                format!("`{id}` is not a user principal name or an object id"),
            ));
        }
    }
    if let Some(email) = &user.email {
        let email = email.trim();
        let valid = email
            .split_once('@')
            .is_some_and(|(name, host)| !name.is_empty() && host.contains('.'))
            && !email.contains(char::is_whitespace);
        if !valid {
            return Err(ConfigError::new(
                key("email"),
                format!("`{email}` is not an e-mail address"),
            ));
        }
    }
    if let Some(word) = &user.direct {
        if word.trim().eq_ignore_ascii_case("off") {
            return Ok(());
        }
        let Some(chat) = DirectChat::parse(word) else {
            return Err(ConfigError::new(
                key("direct"),
                format!("`{word}` is not one of slack, hipchat, mattermost, teams, off"),
            ));
        };
        if !direct.configured(chat) {
            return Err(ConfigError::new(
                key("direct"),
                format!(
                    "is `{}`, but [direct] does not configure it ({})",
                    chat.as_str(),
                    match chat {
                        DirectChat::Slack => "slack_bot_token",
                        DirectChat::HipChat => "hipchat_url and hipchat_token",
                        DirectChat::Mattermost => "mattermost_url and mattermost_token",
                        DirectChat::Teams => "teams_workflow_url",
                    }
                ),
            ));
        }
        if !user.reachable_on(chat) {
            return Err(ConfigError::new(
                key("direct"),
                format!(
                    "is `{}`, but the entry has no {} to find them by",
                    chat.as_str(),
                    match chat {
                        DirectChat::Slack => "Slack user id (slack = \"U...\") or email",
                        DirectChat::HipChat => "hipchat mention name or email",
                        DirectChat::Mattermost => "mattermost user id",
                        DirectChat::Teams => "email",
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// A chat server's base URL as check-config shows it: in full when it is only a scheme and a
/// host (and port), else by scheme and host (a path may hold a proxy's token).
fn shown_base(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.path(), "" | "/") => url.to_owned(),
        _ => redact_url(url),
    }
}

/// An http(s) base URL without query or trailing slash, for `key`.
fn base_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    match reqwest::Url::parse(url) {
        Ok(parsed)
            if matches!(parsed.scheme(), "http" | "https")
                && parsed.host().is_some()
                && parsed.query().is_none()
                && parsed.username().is_empty()
                && parsed.password().is_none() =>
        {
            Ok(url.to_owned())
        }
        // Never the value itself: a user name or password in it would be shown.
        _ => Err(ConfigError::at(
            key,
            "is not an http(s) URL such as https://chat.example.com (no user:password@, no query)",
        )),
    }
}

impl RawDirect {
    fn resolve(self) -> Result<DirectSettings, ConfigError> {
        let RawDirect {
            slack_bot_token,
            slack_api_url,
            hipchat_url,
            hipchat_token,
            mattermost_url,
            mattermost_token,
            teams_workflow_url,
        } = self;
        let hipchat_url = hipchat_url
            .filter(|u| !u.trim().is_empty())
            .map(|u| base_url("direct.hipchat_url", &u))
            .transpose()?;
        let mattermost_url = mattermost_url
            .filter(|u| !u.trim().is_empty())
            .map(|u| base_url("direct.mattermost_url", &u))
            .transpose()?;
        let hipchat_token = long_secret("direct.hipchat_token", hipchat_token)?;
        let mattermost_token = long_secret("direct.mattermost_token", mattermost_token)?;
        let teams_workflow_url = teams_workflow_url
            .filter(|u| !u.trim().is_empty())
            .map(|u| {
                if u.trim() == REDACTED || is_placeholder(&u) {
                    Ok(SecretString::from(u.trim().to_owned()))
                } else {
                    parse_chat_url("direct.teams_workflow_url", &u)
                }
            })
            .transpose()?;
        for (key, url, token) in [
            (
                "direct.hipchat_url",
                hipchat_url.is_some(),
                hipchat_token.is_some(),
            ),
            (
                "direct.mattermost_url",
                mattermost_url.is_some(),
                mattermost_token.is_some(),
            ),
        ] {
            if url != token {
                return Err(ConfigError::at(
                    key,
                    "and its token go together: set both (or neither)",
                ));
            }
        }
        let slack_bot_token = long_secret("direct.slack_bot_token", slack_bot_token)?;
        let url = slack_api_url.trim().trim_end_matches('/');
        // Errors name the URL by its scheme and host only (`redact_url`): what follows may be
        // a secret (a proxy's path token, a user name and password).
        let refused = |why: &str| Err(ConfigError::at("direct.slack_api_url", why.to_owned()));
        match reqwest::Url::parse(url) {
            Ok(parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
                return refused(&format!(
                    "`{}` carries a user name or password (user:pass@), which would be sent \
                     to every request and shown where the URL is: the Web API authenticates \
                     with the bot token ([direct] slack_bot_token, PR_REMINDER_SLACK_BOT_TOKEN) \
                     alone, so give the URL without them, such as {SLACK_API_URL}",
                    redact_url(url)
                ))
            }
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https")
                    && parsed.host().is_some()
                    && parsed.query().is_none() => {}
            Ok(_) => {
                return refused(&format!(
                    "`{}` is not an http(s) URL without a query, such as {SLACK_API_URL}",
                    redact_url(url)
                ))
            }
            Err(_) => {
                return refused(&format!(
                    "is not a URL (http or https), such as {SLACK_API_URL}"
                ))
            }
        }
        Ok(DirectSettings {
            slack_bot_token,
            slack_api_url: url.to_owned(),
            hipchat_url,
            hipchat_token,
            mattermost_url,
            mattermost_token,
            teams_workflow_url,
        })
    }
}

impl RawNotify {
    /// Everything to the console until rooms are resolved.
    fn resolve(self) -> Result<NotifySettings, ConfigError> {
        let RawNotify {
            coalesce_seconds,
            max_attempts,
            timeout_seconds,
            retry_min_ms,
            retry_max_seconds,
            room_rate_per_minute,
        } = self;
        let coalesce = duration(
            "notify.coalesce_seconds",
            coalesce_seconds,
            0.0..=3600.0,
            1.0,
        )?;
        let max_attempts = whole("notify.max_attempts", max_attempts, 1..=1000)?;
        let timeout = duration("notify.timeout_seconds", timeout_seconds, 0.05..=300.0, 1.0)?;
        let retry_min = whole("notify.retry_min_ms", retry_min_ms, 1..=3_600_000)?;
        let retry_max = whole("notify.retry_max_seconds", retry_max_seconds, 1..=86_400)?;
        let rate = room_rate_per_minute
            .map(|n| whole("notify.room_rate_per_minute", n, 1..=6000))
            .transpose()?;
        Ok(NotifySettings {
            rooms: vec![Room {
                name: "console".into(),
                sink: Sink::Console,
            }],
            routes: vec![catch_all("console")],
            coalesce,
            max_attempts,
            timeout,
            retry_min: Duration::from_millis(retry_min),
            retry_max: Duration::from_secs(retry_max),
            room_rate_per_minute: rate,
        })
    }
}

impl RawSweep {
    fn resolve(self) -> Result<SweepSettings, ConfigError> {
        let RawSweep {
            token,
            min_interval_minutes,
            escalate_after_hours,
            escalate_working_days_only,
            timezone,
            working_days,
            quiet_hours,
            all_clear,
            schedule,
            hipchat_mention_ping,
        } = self;
        let token = long_secret("sweep.token", token)?;
        let min_interval = duration(
            "sweep.min_interval_minutes",
            min_interval_minutes,
            0.0..=10_080.0,
            60.0,
        )?;
        let escalate_after = duration(
            "sweep.escalate_after_hours",
            escalate_after_hours,
            0.0..=8760.0,
            3600.0,
        )?;
        let mut calendar = Calendar::default();
        if let Some(tz) = timezone {
            calendar.tz = tz.trim().parse().map_err(|_| {
                ConfigError::at(
                    "sweep.timezone",
                    format!("`{tz}` is not an IANA time zone such as Europe/Berlin"),
                )
            })?;
        }
        if let Some(days) = working_days {
            calendar.working_days =
                parse_working_days(&days).map_err(|e| ConfigError::at("sweep.working_days", e))?;
        }
        if let Some(hours) = quiet_hours.filter(|h| !h.trim().is_empty()) {
            calendar.quiet_hours =
                Some(parse_hours(&hours).map_err(|e| ConfigError::at("sweep.quiet_hours", e))?);
        }
        let schedule = schedule.filter(|s| !s.trim().is_empty());
        if let Some(schedule) = &schedule {
            parse_schedule(schedule).map_err(|e| ConfigError::at("sweep.schedule", e))?;
        }
        Ok(SweepSettings {
            token,
            min_interval,
            escalate_after,
            escalate_working_days_only,
            calendar,
            all_clear,
            schedule,
            hipchat_mention_ping,
        })
    }
}

impl RawCommands {
    /// Without `users`, which are a top-level key.
    fn resolve(self) -> Result<CommandSettings, ConfigError> {
        let RawCommands {
            hipchat_token,
            slack_signing_secret,
            mattermost_token,
            default_snooze_hours,
            max_snooze_days,
        } = self;
        let max_snooze = duration(
            "commands.max_snooze_days",
            max_snooze_days,
            0.01..=365.0,
            86_400.0,
        )?;
        let default_snooze = duration(
            "commands.default_snooze_hours",
            default_snooze_hours,
            0.1..=8760.0,
            3600.0,
        )?;
        if default_snooze > max_snooze {
            return Err(ConfigError::at(
                "commands.default_snooze_hours",
                format!(
                    "{default_snooze_hours} hours is longer than max_snooze_days ({max_snooze_days} days)"
                ),
            ));
        }
        Ok(CommandSettings {
            hipchat_token: long_secret("commands.hipchat_token", hipchat_token)?,
            // Slack's signing secrets are 32 hex digits; Mattermost's tokens 26 characters.
            slack_signing_secret: long_secret(
                "commands.slack_signing_secret",
                slack_signing_secret,
            )?,
            mattermost_token: long_secret("commands.mattermost_token", mattermost_token)?,
            default_snooze,
            max_snooze,
            users: Vec::new(),
        })
    }
}

/// Every repository to `room`, announcing what a route announces by default.
fn catch_all(room: &str) -> Route {
    Route {
        repositories: vec!["*".into()],
        rooms: vec![room.into()],
        required_approvals: None,
        approvals_after_last_push: false,
        room_reminders: true,
        announce: Announce::default(),
        ignore_title_patterns: default_ignore_title_patterns(),
    }
}

fn default_ignore_title_patterns() -> Vec<String> {
    DEFAULT_IGNORE_TITLE_PATTERNS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Rooms and routes from the file, plus the one-room shortcuts from the environment. Neither
/// names a room: everything stays on the console. Returns the rooms the shortcuts added, with
/// their variables.
fn resolve_rooms(
    rooms: Vec<RawRoom>,
    routes: Vec<RawRoute>,
    shortcuts: &[Shortcut<'_>],
    direct: &DirectSettings,
    notify: &mut NotifySettings,
) -> Result<Vec<(String, &'static str)>, ConfigError> {
    let mut out_rooms: Vec<Room> = Vec::new();
    for (i, room) in rooms.into_iter().enumerate() {
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
        if let Some(channel) = room.slack_channel {
            let given = [
                ("hipchat_url", room.hipchat_url.is_some()),
                ("hipchat_token", room.hipchat_token.is_some()),
                ("slack_webhook_url", room.slack_webhook_url.is_some()),
                ("teams_webhook_url", room.teams_webhook_url.is_some()),
                (
                    "google_chat_webhook_url",
                    room.google_chat_webhook_url.is_some(),
                ),
            ];
            if let Some((other, _)) = given.iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(
                    key,
                    format!("has both slack_channel and {other}: a room has exactly one"),
                ));
            }
            let channel = channel.trim().to_owned();
            // Slack's conversation IDs: `C...` (channels), `G...` (older private channels),
            // `D...` (direct messages), upper-case letters and digits. Stored messages are kept
            // by the ID Slack answers, so a name would never match them.
            let is_id = channel.len() >= 3
                && channel.starts_with(['C', 'G', 'D'])
                && channel
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if !is_id {
                return Err(ConfigError::new(
                    format!("{key}.slack_channel"),
                    format!(
                        "`{channel}` is not a channel ID: give the ID (C0123ABCD, at the end of \
                         the channel's link), not its name"
                    ),
                ));
            }
            let Some(token) = &direct.slack_bot_token else {
                return Err(ConfigError::new(
                    format!("{key}.slack_channel"),
                    "needs a Slack bot token: set [direct] slack_bot_token or \
                     PR_REMINDER_SLACK_BOT_TOKEN (xoxb-..., with the chat:write scope)",
                ));
            };
            out_rooms.push(Room {
                name: room.name,
                sink: Sink::SlackApi {
                    channel,
                    api_url: direct.slack_api_url.clone(),
                    token: token.0.clone(),
                },
            });
            continue;
        }
        let urls = [
            ("hipchat_url", room.hipchat_url),
            ("slack_webhook_url", room.slack_webhook_url),
            ("teams_webhook_url", room.teams_webhook_url),
            ("google_chat_webhook_url", room.google_chat_webhook_url),
        ];
        let mut given = urls
            .into_iter()
            .filter_map(|(k, url)| url.map(|url| (k, url)));
        let (url_key, url) = match (given.next(), given.next()) {
            (Some(one), None) => one,
            _ => {
                return Err(ConfigError::new(
                    key,
                    "needs exactly one of hipchat_url, slack_webhook_url, teams_webhook_url, \
                     google_chat_webhook_url, slack_channel",
                ))
            }
        };
        let secret = parse_chat_url(&format!("{key}.{url_key}"), &url)?;
        let token = long_secret(&format!("{key}.hipchat_token"), room.hipchat_token)?;
        let sink = match (url_key, token) {
            ("hipchat_url", Some(token)) => Sink::HipChatBearer {
                url: secret,
                token: token.0,
            },
            ("hipchat_url", None) => Sink::HipChat(secret),
            (_, Some(_)) => {
                return Err(ConfigError::new(
                    format!("{key}.hipchat_token"),
                    "goes with hipchat_url only",
                ))
            }
            ("slack_webhook_url", None) => Sink::Slack(secret),
            ("teams_webhook_url", None) => Sink::Teams(secret),
            _ => Sink::GoogleChat(secret),
        };
        out_rooms.push(Room {
            name: room.name,
            sink,
        });
    }

    let mut out_routes: Vec<Route> = Vec::new();
    for (i, route) in routes.into_iter().enumerate() {
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
        let (rooms_key, rooms) = match (route.room, route.rooms) {
            (Some(room), None) => (format!("{key}.room"), vec![room]),
            (None, Some(rooms)) if !rooms.is_empty() => (format!("{key}.rooms"), rooms),
            (None, Some(_)) => {
                return Err(ConfigError::new(format!("{key}.rooms"), "lists no room"));
            }
            _ => {
                return Err(ConfigError::new(
                    key,
                    "needs exactly one of room, rooms (a list: the route's messages go to each)",
                ));
            }
        };
        for room in &rooms {
            if !out_rooms.iter().any(|r| &r.name == room) {
                return Err(ConfigError::new(
                    rooms_key.clone(),
                    format!("no room is named `{room}`"),
                ));
            }
        }
        let defaults = Announce::default();
        out_routes.push(Route {
            repositories: route.repositories,
            rooms,
            required_approvals: route
                .required_approvals
                .map(|n| whole(&format!("{key}.required_approvals"), n, 1..=100))
                .transpose()?,
            approvals_after_last_push: route.approvals_after_last_push.unwrap_or(false),
            room_reminders: route.room_reminders.unwrap_or(true),
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
            ignore_title_patterns: route
                .ignore_title_patterns
                .unwrap_or_else(default_ignore_title_patterns),
        });
    }
    if out_routes.is_empty() {
        match out_rooms.len() {
            0 => {}
            1 => out_routes.push(catch_all(&out_rooms[0].name)),
            _ => {
                return Err(ConfigError::new(
                    "routes",
                    "several rooms are defined but no route says which repositories go where",
                ))
            }
        }
    }

    // The environment shortcuts: one more room that takes every repository no route claimed.
    let mut from_environment = Vec::new();
    for shortcut in shortcuts.iter().filter(|s| !s.url.trim().is_empty()) {
        let sink = (shortcut.sink)(parse_chat_url(shortcut.var, shortcut.url)?);
        let name = if out_rooms.iter().any(|r| r.name == shortcut.room) {
            format!("{}-env", shortcut.room)
        } else {
            shortcut.room.to_owned()
        };
        out_routes.push(catch_all(&name));
        from_environment.push((name.clone(), shortcut.var));
        out_rooms.push(Room { name, sink });
    }

    if !out_rooms.is_empty() {
        notify.rooms = out_rooms;
        notify.routes = out_routes;
    }
    Ok(from_environment)
}

// The checks, one per kind of value; `path` is the file's key (`ConfigError::at` adds the
// variable).

/// A whole number in `range`, as the setting's type.
fn whole<T: TryFrom<i64>>(
    path: &str,
    n: i64,
    range: RangeInclusive<i64>,
) -> Result<T, ConfigError> {
    if !range.contains(&n) {
        let (lo, hi) = range.into_inner();
        return Err(ConfigError::at(
            path,
            format!("{n} is not between {lo} and {hi}"),
        ));
    }
    T::try_from(n).map_err(|_| ConfigError::at(path, format!("{n} is out of range")))
}

/// A number in `range` of a unit this many seconds long, as a duration.
fn duration(
    path: &str,
    v: f64,
    range: RangeInclusive<f64>,
    unit: f64,
) -> Result<Duration, ConfigError> {
    if !range.contains(&v) {
        let (lo, hi) = range.into_inner();
        return Err(ConfigError::at(
            path,
            format!("{v} is not between {lo} and {hi}"),
        ));
    }
    Ok(Duration::from_secs_f64(v * unit))
}

/// A token or signing secret: unset or blank is `None`, a short one is refused.
fn long_secret(path: &str, value: Option<String>) -> Result<Option<SecretToken>, ConfigError> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        // check-config's output fed back: kept, so that it reads back the same, and refused by
        // everything but check-config (`Settings::placeholder`).
        Some(v) if v == REDACTED => Ok(Some(SecretToken(SecretString::from(v)))),
        Some(v) if v.len() < 16 => Err(ConfigError::at(
            path,
            "is shorter than 16 characters; use e.g. `openssl rand -hex 32`",
        )),
        Some(v) => Ok(Some(SecretToken(SecretString::from(v)))),
    }
}

/// A chat URL: its token is never shown, not even in the error.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
        assert_eq!(
            s.database,
            Database::Sqlite(PathBuf::from(DEFAULT_DATABASE))
        );
        assert_eq!(s.required_approvals, 2);
    }

    #[test]
    fn what_ends_demo_mode_is_named_and_empty_or_unknown_variables_do_not() {
        let refused = |pairs: &[(&str, &str)]| {
            Settings::load(None, &env(pairs), false)
                .unwrap_err()
                .to_string()
        };
        let why = refused(&[("PR_REMINDER_STATUS_TOKEN", "0123456789abcdef")]);
        assert!(
            why.ends_with(
                "(demo mode, which accepts them on loopback, is off because configuration was \
                 found: PR_REMINDER_STATUS_TOKEN)"
            ),
            "{why}"
        );
        assert!(!why.contains("0123456789abcdef"), "{why}");
        let why = refused(&[("PR_REMINDER_LISTEN", "0.0.0.0:8080")]);
        assert!(
            why.contains("configuration was found: PR_REMINDER_LISTEN"),
            "{why}"
        );
        // Empty (compose's `${VAR:-}`) and unknown variables are no configuration.
        let quiet = env(&[
            ("PR_REMINDER_STATUS_TOKEN", ""),
            ("PR_REMINDER_SLACK_WEBHOOK_URL", " "),
            ("PR_REMINDER_BITBUCKET_KIND", ""),
            ("PR_REMINDER_WEBHOOK_SECRETS", "a-typo"),
            (
                "PR_REMINDER_TEST_POSTGRES",
                "postgres://u:p@127.0.0.1:55433/postgres",
            ),
            ("PR_REMINDER_PG_PORT", "55433"),
        ]);
        let s = Settings::load(None, &quiet, false).unwrap();
        assert!(matches!(s.signature, SignaturePolicy::Demo));
        assert_eq!(
            Settings::unknown_variables(&quiet),
            vec!["PR_REMINDER_WEBHOOK_SECRETS".to_owned()]
        );
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
    fn each_kind_of_room_has_its_own_rate_unless_one_is_set() {
        let s = Settings::load(None, &env(&[]), false).unwrap();
        assert_eq!(s.notify.room_rate_per_minute, None);
        let url = || SecretString::from("https://x.example/y".to_owned());
        assert_eq!(Sink::HipChat(url()).default_rate_per_minute(), Some(30));
        assert_eq!(Sink::Slack(url()).default_rate_per_minute(), Some(60));
        assert_eq!(Sink::Teams(url()).default_rate_per_minute(), Some(30));
        assert_eq!(Sink::GoogleChat(url()).default_rate_per_minute(), Some(30));
        assert_eq!(Sink::Console.default_rate_per_minute(), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[notify]\nroom_rate_per_minute = 12\n").unwrap();
        let s = Settings::load(Some(&path), &env(&[]), true).unwrap();
        assert_eq!(s.notify.room_rate_per_minute, Some(12));
    }

    #[test]
    fn a_route_may_send_to_several_rooms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "webhook_secret = \"s\"\n\
             [[rooms]]\nname = \"backend\"\nslack_webhook_url = \"https://hooks.example/T/B/x\"\n\
             [[rooms]]\nname = \"backend-new\"\nhipchat_url = \"https://hc.example/v2/room/1/notification?auth_token=x\"\n\
             [[routes]]\nrepositories = [\"acme/*\"]\nrooms = [\"backend\", \"backend-new\"]\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), &env(&[]), false).unwrap();
        assert_eq!(s.notify.routes[0].rooms, ["backend", "backend-new"]);
        assert!(s
            .render()
            .contains("rooms = [\"backend\", \"backend-new\"]"));
    }

    #[test]
    fn analytics_and_retention_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "webhook_secret = \"s\"\n[analytics]\nweekly_report = \"Fri 16:30\"\nworking_hours_only = true\n\
             page_url = \"https://pr.example.com/status/review-flow/\"\n\
             [retention]\noutbox_days = 0\ndeliveries_days = 7\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path), &env(&[]), false).unwrap();
        assert_eq!(
            s.analytics.weekly_report,
            Some((
                chrono::Weekday::Fri,
                chrono::NaiveTime::from_hms_opt(16, 30, 0).unwrap()
            ))
        );
        assert!(s.analytics.working_hours_only);
        assert_eq!(s.retention.outbox, None);
        assert_eq!(s.retention.deliveries, Some(chrono::Duration::days(7)));
        let shown = s.render();
        assert!(shown.contains("weekly_report = \"fri 16:30\"\n"), "{shown}");
        assert_eq!(
            s.analytics.page_url.as_deref(),
            Some("https://pr.example.com/status/review-flow")
        );
        assert!(
            shown.contains("page_url = \"https://pr.example.com/status/review-flow\"\n"),
            "{shown}"
        );
        assert!(shown.contains("outbox_days = 0\n"), "{shown}");
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
                "[analytics]\npage_url = \"pr.example.com/status/review-flow\"\n".to_owned(),
                "analytics.page_url",
            ),
            (
                "[sweep]\nschedule = \"every hour\"\n".to_owned(),
                "sweep.schedule",
            ),
            ("[sweep]\ntoken = \"short\"\n".to_owned(), "sweep.token"),
            (
                "[analytics]\nweekly_report = \"monday 9am\"\n".to_owned(),
                "analytics.weekly_report",
            ),
            (
                "[analytics]\nwindow_days = 0\n".to_owned(),
                "analytics.window_days",
            ),
            (
                "[retention]\ndeliveries_days = -1\n".to_owned(),
                "retention.deliveries_days",
            ),
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
                format!("{room}hipchat_token = \"secret-room-token-0123\"\n"),
                "rooms[0].hipchat_token",
            ),
            (
                format!("{room}teams_webhook_url = \"https://t.example/x?sig=secret\"\n"),
                "rooms[0]",
            ),
            (
                "[[rooms]]\nname = \"a\"\nhipchat_url = \"https://h.example/v2/room/1/notification\"\nhipchat_token = \"short\"\n".to_owned(),
                "rooms[0].hipchat_token",
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
                format!("{room}[[routes]]\nrepositories = [\"x/*\"]\nrooms = [\"a\", \"c\"]\n"),
                "routes[0].rooms",
            ),
            (
                format!("{room}[[routes]]\nrepositories = [\"x/*\"]\nrooms = []\n"),
                "routes[0].rooms",
            ),
            (
                format!(
                    "{room}[[routes]]\nrepositories = [\"x/*\"]\nroom = \"a\"\nrooms = [\"a\"]\n"
                ),
                "routes[0]",
            ),
            (
                format!("{room}[[routes]]\nrepositories = [\"x/*\"]\n"),
                "routes[0]",
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

    #[test]
    fn the_environment_overrides_the_file_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "webhook_secret = [\"a\", \"b\"]\nrequired_approvals = 3\nmax_batch = 5\n\
             [sweep]\ntoken = \"file-token-0123456789\"\nmin_interval_minutes = 5\n\
             [commands]\ndefault_snooze_hours = 2\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&path),
            &env(&[
                ("PR_REMINDER_REQUIRED_APPROVALS", "4"),
                ("PR_REMINDER_SWEEP_TOKEN", "env-token-0123456789"),
                ("PR_REMINDER_COMMAND_TOKEN", "env-command-0123456789"),
            ]),
            false,
        )
        .unwrap();
        assert_eq!(s.required_approvals, 4, "the variable wins");
        assert_eq!(s.max_batch, 5, "the file's other keys stay");
        let token = s.sweep.token.as_ref().unwrap().0.expose_secret().to_owned();
        assert_eq!(token, "env-token-0123456789");
        assert_eq!(
            s.sweep.min_interval,
            Duration::from_secs(300),
            "same table, kept"
        );
        assert_eq!(s.commands.default_snooze, Duration::from_secs(7200));
        assert!(s.commands.hipchat_token.is_some());
        assert!(matches!(&s.signature, SignaturePolicy::Verify(l) if l.len() == 2));
    }

    #[test]
    fn every_environment_variable_lands_on_its_setting() {
        type Check = fn(&Settings) -> bool;
        const TOKEN: &str = "0123456789abcdef-token";
        fn token(t: &Option<SecretToken>) -> bool {
            t.as_ref().is_some_and(|t| t.0.expose_secret() == TOKEN)
        }
        fn one_room_of(s: &Settings, name: &str, kind: fn(&Sink) -> bool) -> bool {
            matches!(
                (&s.notify.rooms[..], &s.notify.routes[..]),
                ([room], [route]) if room.name == name && route.rooms == [name] && kind(&room.sink)
            )
        }
        fn one_room(s: &Settings, name: &str, hipchat: bool) -> bool {
            matches!(
                (&s.notify.rooms[..], &s.notify.routes[..]),
                ([room], [route]) if room.name == name
                    && route.rooms == [name]
                    && matches!(room.sink, Sink::HipChat(_)) == hipchat
                    && matches!(room.sink, Sink::Slack(_)) != hipchat
            )
        }
        let checks: &[(&str, &str, Check)] = &[
            ("PR_REMINDER_LISTEN", "0.0.0.0:9123", |s| {
                s.listen.to_string() == "0.0.0.0:9123"
            }),
            ("PR_REMINDER_DATABASE", "/srv/other.db", |s| {
                s.database == Database::Sqlite("/srv/other.db".into())
            }),
            (
                "PR_REMINDER_WEBHOOK_SECRET",
                "one, two,three",
                |s| matches!(&s.signature, SignaturePolicy::Verify(l) if l.len() == 3),
            ),
            ("PR_REMINDER_REQUIRED_APPROVALS", " 7", |s| {
                s.required_approvals == 7
            }),
            ("PR_REMINDER_INSECURE_SKIP_SIGNATURE", "Yes", |s| {
                matches!(s.signature, SignaturePolicy::Insecure)
            }),
            ("PR_REMINDER_MAX_BODY_BYTES", "4096", |s| {
                s.max_body_bytes == 4096
            }),
            ("PR_REMINDER_SYNCHRONOUS", "Normal", |s| {
                s.synchronous == "normal"
            }),
            ("PR_REMINDER_MAX_BATCH", "9", |s| s.max_batch == 9),
            ("PR_REMINDER_LOG_FORMAT", " JSON", |s| {
                s.log_format == LogFormat::Json
            }),
            ("PR_REMINDER_SWEEP_TOKEN", TOKEN, |s| token(&s.sweep.token)),
            ("PR_REMINDER_COMMAND_TOKEN", TOKEN, |s| {
                token(&s.commands.hipchat_token)
            }),
            ("PR_REMINDER_SLACK_SIGNING_SECRET", TOKEN, |s| {
                token(&s.commands.slack_signing_secret)
            }),
            ("PR_REMINDER_MATTERMOST_TOKEN", TOKEN, |s| {
                token(&s.commands.mattermost_token)
            }),
            ("PR_REMINDER_METRICS_TOKEN", TOKEN, |s| {
                token(&s.monitoring.metrics_token)
            }),
            ("PR_REMINDER_STATUS_TOKEN", TOKEN, |s| {
                token(&s.monitoring.status_token)
            }),
            ("PR_REMINDER_SLACK_BOT_TOKEN", TOKEN, |s| {
                token(&s.direct.slack_bot_token)
            }),
            ("PR_REMINDER_SLACK_API_URL", "http://slack.example:8080/api/", |s| {
                s.direct.slack_api_url == "http://slack.example:8080/api"
            }),
            (
                "PR_REMINDER_HIPCHAT_URL",
                "https://team.hipchat.example/v2/room/1/notification?auth_token=t",
                |s| one_room(s, "hipchat", true),
            ),
            (
                "PR_REMINDER_SLACK_WEBHOOK_URL",
                "https://hooks.slack.example/T/B/t",
                |s| one_room(s, "slack", false),
            ),
            (
                "PR_REMINDER_TEAMS_WEBHOOK_URL",
                "https://prod.westeurope.logic.azure.com/workflows/1/triggers/manual/paths/invoke?sig=s",
                |s| one_room_of(s, "teams", |sink| matches!(sink, Sink::Teams(_))),
            ),
            (
                "PR_REMINDER_GOOGLE_CHAT_WEBHOOK_URL",
                "https://chat.googleapis.com/v1/spaces/A/messages?key=k&token=t",
                |s| one_room_of(s, "google-chat", |sink| matches!(sink, Sink::GoogleChat(_))),
            ),
        ];
        assert_eq!(checks.len(), ENV_VARS.len(), "a check for every variable");
        let defaults = Settings::with_defaults(SignaturePolicy::Demo);
        for &(var, _, _) in ENV_VARS {
            assert!(var.starts_with(ENV_PREFIX), "{var}");
            let (_, value, check) = checks
                .iter()
                .find(|(name, _, _)| *name == var)
                .unwrap_or_else(|| panic!("no check for {var}"));
            assert!(!check(&defaults), "{var}: the default already passes");
            // Configured, so the signature needs a say (except where the variable is it).
            let mut vars = env(&[(var, value)]);
            if !var.ends_with("_SIGNATURE") {
                vars.insert("PR_REMINDER_INSECURE_SKIP_SIGNATURE".into(), "1".into());
            }
            let s = Settings::load(None, &vars, false).unwrap_or_else(|e| panic!("{var}: {e}"));
            assert!(check(&s), "{var} did not land: {s:?}");
        }
    }

    #[test]
    fn environment_errors_name_the_variable() {
        for (key, value, message) in [
            ("PR_REMINDER_MAX_BATCH", "", "`` is not a whole number"),
            (
                "PR_REMINDER_INSECURE_SKIP_SIGNATURE",
                "2",
                "`2` is not a boolean",
            ),
            (
                "PR_REMINDER_LOG_FORMAT",
                "xml",
                "`xml` is not one of text, json",
            ),
            (
                "PR_REMINDER_HIPCHAT_URL",
                "token-only",
                "is not an http(s) URL",
            ),
        ] {
            let err = Settings::load(
                None,
                &env(&[(key, value), ("PR_REMINDER_WEBHOOK_SECRET", "s")]),
                false,
            )
            .unwrap_err();
            assert_eq!(err.key, key);
            assert!(err.message.starts_with(message), "{err}");
        }
        // A value that parses but is out of range names the file key and the variable.
        let err = Settings::load(
            None,
            &env(&[
                ("PR_REMINDER_MAX_BATCH", "0"),
                ("PR_REMINDER_WEBHOOK_SECRET", "s"),
            ]),
            false,
        )
        .unwrap_err();
        assert_eq!(err.key, "max_batch (PR_REMINDER_MAX_BATCH)");
        assert_eq!(err.message, "0 is not between 1 and 10000");
    }

    #[test]
    fn unknown_file_keys_are_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (body, unknown) in [
            ("listen_port = 3\n", "listen_port"),
            // An environment-only shortcut is not a file key.
            ("hipchat_url = \"https://h.example/x\"\n", "hipchat_url"),
            ("[notify]\nmax_attempt = 3\n", "max_attempt"),
            ("[sweep]\ntokens = \"x\"\n", "tokens"),
            ("[commands]\ntoken = \"x\"\n", "token"),
            ("[[rooms]]\nname = \"a\"\nurl = \"x\"\n", "url"),
            (
                "[[routes]]\nrepositories = []\nroom = \"a\"\nannounce = 1\n",
                "announce",
            ),
            ("[[users]]\nbitbucket = \"a\"\nmatrix = \"b\"\n", "matrix"),
        ] {
            std::fs::write(&path, format!("webhook_secret = \"s\"\n{body}")).unwrap();
            let err = Settings::load(Some(&path), &env(&[]), false).unwrap_err();
            assert_eq!(err.key, path.display().to_string());
            assert!(
                err.message
                    .starts_with(&format!("unknown field `{unknown}`")),
                "{body}: {err}"
            );
        }
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line_but_not_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\nwebhook_secret = \"hunter2\n",
        )
        .unwrap();
        let err = Settings::load(Some(&path), &env(&[]), false).unwrap_err();
        assert_eq!(err.key, path.display().to_string());
        assert!(err.message.ends_with("(line 2)"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn the_defaults_render_as_documented() {
        let s = Settings::load(None, &env(&[]), false).unwrap();
        assert_eq!(s.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(
            s.sweep.calendar,
            crate::domain::calendar::Calendar::default()
        );
        assert_eq!(s.render(), DEFAULTS_RENDERED);
        assert_eq!(
            format!("{s:?}"),
            format!("{:?}", Settings::with_defaults(SignaturePolicy::Demo))
        );
    }

    /// What `check-config` prints with nothing configured.
    const DEFAULTS_RENDERED: &str = r#"# pr-reminder's effective settings: the defaults, then the --config file, then the
# PR_REMINDER_* variables. Read back with --config, this file gives the same settings
# (under the same variables). Secrets are shown as "[redacted]": pr-reminder runs
# nothing but check-config on a file holding one until the secret is put back (or
# its PR_REMINDER_* variable, which wins over the file, is set).
# Webhook signatures: DEMO: signatures not checked, loopback only.

listen = "127.0.0.1:8080"
database = "./pr-reminder.db"
# webhook_secret: not set
insecure_skip_signature = false
required_approvals = 2
max_body_bytes = 1048576
body_timeout_seconds = 10
synchronous = "full"
max_batch = 512
log_format = "text"

[notify]
coalesce_seconds = 30
max_attempts = 10
timeout_seconds = 10
retry_min_ms = 1000
retry_max_seconds = 300
# room_rate_per_minute: not set: each kind of room's own (a minute: HipChat 30, Slack 60, Teams 30, Google Chat 30)

[sweep]
# token: not set: POST /sweep and POST /reconcile answer 403
min_interval_minutes = 50
escalate_after_hours = 72
escalate_working_days_only = false
timezone = "UTC"
working_days = ["mon", "tue", "wed", "thu", "fri"]
# quiet_hours: not set (scheduled sweeps post at any hour)
all_clear = false
# schedule: not set (no built-in schedule: digests are posted only when POST /sweep or pr-reminder sweep is called)
hipchat_mention_ping = true

[commands]
# hipchat_token: not set: HipChat's /reviews is off
# slack_signing_secret: not set
# mattermost_token: not set
default_snooze_hours = 24
max_snooze_days = 7

[direct]
# slack_bot_token: not set: no room may have a slack_channel
slack_api_url = "https://slack.com/api"
# hipchat_url: not set: no HipChat direct messages
# hipchat_token: not set
# mattermost_url: not set: no Mattermost direct messages
# mattermost_token: not set
# teams_workflow_url: not set: no Teams direct messages

[monitoring]
# metrics_token: not set: GET /metrics is open
# status_token: not set: GET /status is open (demo mode)
webhook_silence_days = 7

[analytics]
working_hours_only = false
window_days = 28
# weekly_report: not set: no weekly report
# page_url: not set: the weekly report does not link to the page

[retention]
deliveries_days = 90
outbox_days = 30
closed_pull_requests_days = 365

# [[rooms]]: none: messages are printed to standard output (the console room)
"#;

    /// Loads `text` as a file under `vars`.
    #[test]
    fn direct_message_settings_are_checked_and_their_secrets_never_shown() {
        let vars = [("PR_REMINDER_WEBHOOK_SECRET", "a-webhook-secret")];
        for (body, key, start) in [
            (
                "[[users]]\nbitbucket = \"a\"\ntimezone = \"Mars/Olympus\"\n",
                "users[0].timezone",
                "`Mars/Olympus` is not an IANA time zone",
            ),
            (
                "[[users]]\nbitbucket = \"a\"\nremind_at = [\"09:30\", \"9h\"]\n",
                "users[0].remind_at",
                "`9h` is not a time of day such as 09:30",
            ),
            (
                "[[users]]\nbitbucket = \"a\"\nworking_days = [\"funday\"]\n",
                "users[0].working_days",
                "`funday` is not a weekday",
            ),
            (
                "[[users]]\nbitbucket = \"a\"\naway_until = \"soon\"\n",
                "users[0].away_until",
                "`soon` is not a date such as 2027-01-04",
            ),
            (
                "[[users]]\nbitbucket = \"a\"\nemail = \"nobody\"\n",
                "users[0].email",
                "`nobody` is not an e-mail address",
            ),
            (
                "[[users]]\nbitbucket = \"a\"\ngoogle_chat = \"users/1> <users/all\"\n",
                "users[0].google_chat",
                "`users/1> <users/all` is not a Google Chat user id such as users/123456789",
            ),
            (
                "[[users]]\nbitbucket = \"a\"\nteams = \"<at>x</at>\"\n",
                "users[0].teams",
                "`<at>x</at>` is not a user principal name or an object id",
            ),
            (
                "[[users]]\nbitbucket = \"a\"\ndirect = \"signal\"\n",
                "users[0].direct",
                "`signal` is not one of slack, hipchat, mattermost, teams, off",
            ),
            (
                "[[users]]\nbitbucket = \"a\"\nslack = \"U0123ABCD\"\ndirect = \"slack\"\n",
                "users[0].direct",
                "is `slack`, but [direct] does not configure it (slack_bot_token)",
            ),
            (
                "[direct]\nmattermost_url = \"https://mm.example\"\n\
                 mattermost_token = \"0123456789abcdef0\"\n\
                 [[users]]\nbitbucket = \"a\"\ndirect = \"mattermost\"\n",
                "users[0].direct",
                "is `mattermost`, but the entry has no mattermost user id",
            ),
            (
                "[direct]\nhipchat_url = \"https://hipchat.example\"\n",
                "direct.hipchat_url",
                "and its token go together",
            ),
            (
                "[direct]\nteams_workflow_url = \"not a url\"\n",
                "direct.teams_workflow_url",
                "is not an http(s) URL",
            ),
        ] {
            let err = load_text(body, &vars).unwrap_err();
            assert_eq!(err.key, key, "{body}: {err}");
            assert!(err.message.starts_with(start), "{body}: {err}");
        }

        let text = "[direct]\nhipchat_url = \"https://hipchat.example/\"\n\
            hipchat_token = \"hipchat-dm-token-secret-0123\"\n\
            mattermost_url = \"https://mm.example\"\n\
            mattermost_token = \"mattermost-token-secret-0123\"\n\
            teams_workflow_url = \"https://prod.example/workflows/1/invoke?sig=teams-secret-sig\"\n\
            [[users]]\nbitbucket = \"carol\"\nmattermost = \"q7w3mb6yqtbm8ce3q1q3jsk5gh\"\n\
            email = \"carol@example.com\"\ntimezone = \"Europe/Berlin\"\nremind_at = [\"14:00\", \"09:30\"]\n\
            working_days = [\"mon\", \"tue\"]\naway_until = \"2027-01-04\"\ndirect = \"teams\"\n";
        let s = load_text(text, &vars).unwrap();
        assert_eq!(
            s.direct.hipchat_url.as_deref(),
            Some("https://hipchat.example")
        );
        let carol = &s.commands.users[0];
        assert_eq!(carol.direct_chat(&s.direct), Some(DirectChat::Teams));
        assert_eq!(carol.tz(), Some(chrono_tz::Europe::Berlin));
        let t = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(carol.remind_times(), [t(9, 30), t(14, 0)]);
        assert_eq!(
            carol.away_date(),
            chrono::NaiveDate::from_ymd_opt(2027, 1, 4)
        );
        // Without `direct`: the first configured chat she can be found on (HipChat by e-mail).
        let mut default = carol.clone();
        default.direct = None;
        assert_eq!(default.direct_chat(&s.direct), Some(DirectChat::HipChat));
        let shown = s.render();
        for secret in [
            "hipchat-dm-token-secret-0123",
            "mattermost-token-secret-0123",
            "teams-secret-sig",
            "workflows",
        ] {
            assert!(!shown.contains(secret), "{secret} in:\n{shown}");
            assert!(!format!("{s:?}").contains(secret), "{secret} in Debug");
        }
        assert!(shown.contains("teams_workflow_url = \"https://prod.example/[redacted]\""));
        assert!(shown.contains("hipchat_token = \"[redacted]\""));
        // What check-config prints reads back the same (its placeholders refused to run).
        let again = load_text(&shown, &vars).unwrap();
        assert_eq!(again.commands.users, s.commands.users);
        let placeholder = again.placeholder().expect("the placeholders are refused");
        assert!(placeholder.key.starts_with("direct."), "{placeholder}");
    }

    fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(Some(&path), &env(vars), false)
    }

    /// A configuration with every kind of setting: rooms of each kind (ports, a HipChat token
    /// apart), routes to one room and to several, user mappings, two Bitbucket sites, a
    /// calendar and a schedule; secrets from the file and from the environment, and a room
    /// from the environment.
    const RICH: &str = r#"
listen = "0.0.0.0:9090"
database = "/srv/pr-reminder/state.db"
required_approvals = 3
max_body_bytes = 2048
body_timeout_seconds = 2.5
synchronous = "normal"
max_batch = 64
log_format = "json"

[notify]
coalesce_seconds = 0.2
max_attempts = 4
timeout_seconds = 7
retry_min_ms = 250
retry_max_seconds = 60
room_rate_per_minute = 12

[sweep]
min_interval_minutes = 0.5
escalate_after_hours = 36
escalate_working_days_only = true
timezone = "Europe/Berlin"
working_days = ["mon", "tue", "wed", "thu", "sat"]
quiet_hours = "19:00-08:30"
all_clear = true
schedule = "0 9-17 * * Mon-Fri"
hipchat_mention_ping = false

[commands]
hipchat_token = "file-hipchat-command-token"
default_snooze_hours = 6
max_snooze_days = 3

[monitoring]
metrics_token = "file-metrics-token-0123"

[[rooms]]
name = "backend"
hipchat_url = "https://hipchat.example:8443/v2/room/42/notification?auth_token=file-secret-1"

[[rooms]]
name = "ops"
hipchat_url = "https://hipchat.example/v2/room/ops/notification"
hipchat_token = "file-hipchat-room-token"

[[rooms]]
name = "web"
slack_webhook_url = "http://mattermost.example:8065/hooks/file-secret-2"

[[rooms]]
name = "teams"
teams_webhook_url = "https://prod-01.westeurope.logic.azure.com:443/workflows/x/invoke?sig=file-secret-3"

[[rooms]]
name = "mobile"
google_chat_webhook_url = "https://chat.googleapis.com/v1/spaces/A/messages?key=k&token=file-secret-4"

[[routes]]
repositories = ["acme/*", "datacenter:PAY/*"]
rooms = ["backend", "teams"]
required_approvals = 1
announce_merged = true
announce_builds = false
ignore_title_patterns = ["WIP", "do not \"merge\""]

[[routes]]
repositories = ["web/*"]
room = "web"

[[routes]]
repositories = ["mobile/*"]
room = "mobile"

[[users]]
bitbucket = "{c0ffee00-1234}"
hipchat = "carol"
slack = "U024BE7LH"

[[users]]
bitbucket = "dave@example.com"
slack = "U0DAVE"

[[users]]
bitbucket = "557058:erin"
hipchat = "erin"

[[bitbucket]]
kind = "cloud"
token = "file-secret-5"
repositories = ["acme/api", "acme/*"]
poll_interval_minutes = 30

[[bitbucket]]
kind = "datacenter"
url = "https://bitbucket.example:7990"
username = "svc-pr-reminder"
token = "file-secret-6"
repositories = ["PAY/*"]
"#;

    const RICH_ENV: &[(&str, &str)] = &[
        ("PR_REMINDER_WEBHOOK_SECRET", "env-secret-a, env-secret-b"),
        ("PR_REMINDER_SWEEP_TOKEN", "env-secret-sweep-token"),
        ("PR_REMINDER_STATUS_TOKEN", "env-secret-status-token"),
        ("PR_REMINDER_REQUIRED_APPROVALS", "2"),
        (
            "PR_REMINDER_SLACK_WEBHOOK_URL",
            "https://hooks.slack.example/services/T/B/env-secret-c",
        ),
    ];

    #[test]
    fn a_slack_channel_room_posts_with_the_bot_token_which_is_never_shown() {
        let text = "webhook_secret = \"webhook-secret-0\"\n\n[direct]\n\
                    slack_api_url = \"http://127.0.0.1:9/api/\"\n\n\
                    [[rooms]]\nname = \"living\"\nslack_channel = \"C0123ABCD\"\n";
        let token = ("PR_REMINDER_SLACK_BOT_TOKEN", "xoxb-env-secret-bot-token");
        // Without the bot token: an error naming the room's key and where the token goes.
        let err = load_text(text, &[]).unwrap_err();
        assert_eq!(err.key, "rooms[0].slack_channel");
        assert!(
            err.message.contains("[direct] slack_bot_token")
                && err.message.contains("PR_REMINDER_SLACK_BOT_TOKEN"),
            "{}",
            err.message
        );
        let s = load_text(text, &[token]).unwrap();
        match &s.notify.rooms[0].sink {
            Sink::SlackApi {
                channel,
                api_url,
                token,
            } => {
                assert_eq!(channel, "C0123ABCD");
                assert_eq!(api_url, "http://127.0.0.1:9/api", "no trailing slash");
                assert_eq!(token.expose_secret(), "xoxb-env-secret-bot-token");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.direct
                .slack_bot_token
                .as_ref()
                .map(|t| t.0.expose_secret()),
            Some("xoxb-env-secret-bot-token")
        );
        // Never shown: not in Debug, not in check-config.
        let printed = s.render();
        let shown = format!("{s:?}{printed}");
        assert!(!shown.contains("env-secret"), "{shown}");
        assert!(
            printed.contains(
                "\n[direct]\nslack_bot_token = \"[redacted]\"\nslack_api_url = \"http://127.0.0.1:9/[redacted]\"\n"
            ),
            "{printed}"
        );
        assert!(
            printed.contains("\nslack_channel = \"C0123ABCD\""),
            "{printed}"
        );
        // Read back, the placeholder is named and refused; the variable puts the token back.
        let again = load_text(&printed, &[]).unwrap();
        let err = again.placeholder().expect("placeholders");
        assert!(
            err.message.contains("direct.slack_bot_token")
                && err.message.contains("direct.slack_api_url"),
            "{}",
            err.message
        );
        let api_url = ("PR_REMINDER_SLACK_API_URL", "http://127.0.0.1:9/api");
        let again = load_text(
            &printed,
            &[token, api_url, ("PR_REMINDER_WEBHOOK_SECRET", "w")],
        )
        .unwrap();
        assert!(again.placeholder().is_none());
        assert_eq!(again.render(), printed);
        // A channel's name is not its ID; a room has one kind; the API base is a URL.
        for name in ["#backend", "backend", "C0123 ABC", "U0123ABCD", ""] {
            let err = load_text(&text.replace("C0123ABCD", name), &[token]).unwrap_err();
            assert_eq!(err.key, "rooms[0].slack_channel", "{name}");
        }
        let both = format!("{text}slack_webhook_url = \"https://hooks.slack.com/services/x\"\n");
        let err = load_text(&both, &[token]).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.message.as_str()),
            (
                "rooms[0]",
                "has both slack_channel and slack_webhook_url: a room has exactly one"
            )
        );
        let err = load_text(
            text,
            &[token, ("PR_REMINDER_SLACK_API_URL", "slack.com/api")],
        )
        .unwrap_err();
        assert_eq!(err.key, "direct.slack_api_url (PR_REMINDER_SLACK_API_URL)");
    }

    /// `slack_api_url` with a user name or password (`user:pass@`) is refused at load with a
    /// clear error; no error (nor `check-config`, nor `Debug`) shows it beyond scheme and host.
    #[test]
    fn the_slack_api_url_carries_no_credentials_and_is_shown_by_its_host_only() {
        let text = "webhook_secret = \"webhook-secret-0\"\n\n[direct]\n\
                    slack_bot_token = \"xoxb-file-secret-bot-token\"\n\
                    slack_api_url = \"URL\"\n";
        for url in [
            "https://ops:hunter2-secret@slack-proxy.example/api",
            "https://only-user-secret@slack-proxy.example/api",
        ] {
            let err = load_text(&text.replace("URL", url), &[]).unwrap_err();
            assert_eq!(err.key, "direct.slack_api_url (PR_REMINDER_SLACK_API_URL)");
            assert_eq!(
                err.message,
                "`https://slack-proxy.example/[redacted]` carries a user name or password \
                 (user:pass@), which would be sent to every request and shown where the URL is: \
                 the Web API authenticates with the bot token ([direct] slack_bot_token, \
                 PR_REMINDER_SLACK_BOT_TOKEN) alone, so give the URL without them, such as \
                 https://slack.com/api"
            );
            assert!(!format!("{err:?}{err}").contains("-secret"), "{err}");
        }
        // Not a URL: nothing of it is repeated.
        let err = load_text(&text.replace("URL", "ops:hunter2-secret"), &[]).unwrap_err();
        assert!(!format!("{err:?}{err}").contains("hunter2"), "{err}");
        let err = load_text(&text.replace("URL", "ftp://h/p-secret"), &[]).unwrap_err();
        assert_eq!(
            err.message,
            "`ftp://h/[redacted]` is not an http(s) URL without a query, such as https://slack.com/api"
        );
        // A proxy's path: check-config shows its scheme and host (the default in full).
        let proxied = load_text(
            &text.replace("URL", "https://proxy.example:8443/path-secret/api"),
            &[],
        )
        .unwrap();
        let printed = proxied.render();
        assert!(
            printed.contains("slack_api_url = \"https://proxy.example:8443/[redacted]\"\n"),
            "{printed}"
        );
        assert!(
            !format!("{printed}{proxied:?}").contains("path-secret"),
            "{printed}"
        );
        let default = load_text(&text.replace("URL", "https://slack.com/api/"), &[]).unwrap();
        assert!(default
            .render()
            .contains("slack_api_url = \"https://slack.com/api\"\n"));
    }

    #[test]
    fn check_config_prints_a_file_that_reads_back_the_same() {
        let first = load_text(RICH, RICH_ENV).unwrap();
        assert!(first.placeholder().is_none());
        let printed = first.render();
        // Valid TOML, and no secret in it.
        toml::from_str::<toml::Value>(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert!(!printed.contains("-secret"), "{printed}");
        assert!(!printed.contains("token-"), "{printed}");
        assert!(!printed.contains("auth_token"), "{printed}");
        // Hosts keep their ports; every mapping is listed; explanations are comments.
        for shown in [
            "hipchat_url = \"https://hipchat.example:8443/[redacted]\"",
            "slack_webhook_url = \"http://mattermost.example:8065/[redacted]\"",
            "teams_webhook_url = \"https://prod-01.westeurope.logic.azure.com/[redacted]\"",
            "url = \"https://bitbucket.example:7990\"",
            "hipchat_token = \"[redacted]\"",
            "webhook_secret = [\"[redacted]\", \"[redacted]\"]",
            "\n[[users]]\nbitbucket = \"{c0ffee00-1234}\"\nhipchat = \"carol\"\nslack = \"U024BE7LH\"\n",
            "\n[[users]]\nbitbucket = \"dave@example.com\"\n# hipchat: not set\nslack = \"U0DAVE\"\n",
            "\n[[users]]\nbitbucket = \"557058:erin\"\nhipchat = \"erin\"\n# slack: not set\n",
            "ignore_title_patterns = [\"WIP\", 'do not \"merge\"']",
            "# room \"slack\": slack https://hooks.slack.example/[redacted], from PR_REMINDER_SLACK_WEBHOOK_URL",
        ] {
            assert!(printed.contains(shown), "{shown}\n{printed}");
        }
        assert_eq!(printed.matches("[[users]]").count(), 3);
        assert_eq!(
            printed.matches("[[rooms]]").count(),
            5,
            "not the environment's"
        );
        assert_eq!(printed.matches("[[routes]]").count(), 3, "nor its route");

        // Read back under the same variables: the same settings, and the same text.
        let again = load_text(&printed, RICH_ENV).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(again.render(), printed);
        assert_eq!(format!("{again:?}"), format!("{first:?}"));
        assert_eq!(
            format!("{:?}", again.notify.routes),
            format!("{:?}", first.notify.routes)
        );
        assert_eq!(again.commands.users, first.commands.users);
        assert_eq!(again.sweep.calendar, first.sweep.calendar);
        assert_eq!(again.sweep.schedule, first.sweep.schedule);
        // The file's own secrets came back as placeholders: named, and nothing runs on them.
        let err = again.placeholder().expect("placeholders");
        assert_eq!(
            err.key,
            "commands.hipchat_token (PR_REMINDER_COMMAND_TOKEN)"
        );
        assert_eq!(
            err.message,
            "is \"[redacted]\", the placeholder check-config prints for a secret: put the secret \
             itself there, or set its variable (and 9 more: monitoring.metrics_token, \
             rooms[0].hipchat_url, rooms[1].hipchat_url, rooms[1].hipchat_token, \
             rooms[2].slack_webhook_url, rooms[3].teams_webhook_url, \
             rooms[4].google_chat_webhook_url, bitbucket[0].token, bitbucket[1].token)"
        );
    }

    #[test]
    fn a_placeholder_is_never_a_secret_but_the_environment_replaces_it() {
        let text = "webhook_secret = \"[redacted]\"\n[sweep]\ntoken = \"[redacted]\"\n";
        let s = load_text(text, &[]).unwrap();
        let err = s.placeholder().unwrap();
        assert_eq!(err.key, "webhook_secret (PR_REMINDER_WEBHOOK_SECRET)");
        let s = load_text(
            text,
            &[
                ("PR_REMINDER_WEBHOOK_SECRET", "real-secret"),
                ("PR_REMINDER_SWEEP_TOKEN", "a-real-sweep-token-0123"),
            ],
        )
        .unwrap();
        assert!(s.placeholder().is_none());
        // A PostgreSQL password as check-config shows it.
        let s = load_text(
            "webhook_secret = \"s\"\ndatabase = \"postgres://u:[redacted]@db:5432/pr\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            s.placeholder().unwrap().key,
            "database (PR_REMINDER_DATABASE)"
        );
        assert_eq!(s.database.redacted(), "postgres://u:[redacted]@db:5432/pr");
    }

    /// The example configuration with every commented `# key = value` line made a setting:
    /// its keys, and its values (the defaults).
    fn example_uncommented() -> String {
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("pr-reminder.example.toml"),
        )
        .unwrap();
        let setting = |line: &str| {
            let line = line.strip_prefix('#')?.trim_start();
            let is_header = line.starts_with('[') && line.trim_end().ends_with(']');
            let key = line.split_once(" = ").map(|(k, _)| k);
            let is_key = key.is_some_and(|k| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            });
            (is_header || is_key).then(|| line.to_owned())
        };
        example
            .lines()
            .map(|line| setting(line).unwrap_or_else(|| line.to_owned()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The field names a `Deserialize` struct declares (serde's own list), read by a
    /// deserializer that only asks for them.
    fn fields<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
        struct Fields(Vec<&'static str>);
        #[derive(Debug)]
        struct Stop;
        impl std::fmt::Display for Stop {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("stop")
            }
        }
        impl std::error::Error for Stop {}
        impl serde::de::Error for Stop {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Stop
            }
        }
        impl<'de> serde::Deserializer<'de> for &mut Fields {
            type Error = Stop;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
                Err(Stop)
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Stop> {
                self.0.extend(fields);
                Err(Stop)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut found = Fields(Vec::new());
        let _ = T::deserialize(&mut found);
        found.0
    }

    #[test]
    fn the_example_configuration_names_every_setting_with_its_default() {
        let text = example_uncommented();
        let value: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // Every key the program reads, in its table: a new setting without its line fails here.
        let tables: &[(&str, Vec<&str>)] = &[
            ("", fields::<RawSettings>()),
            ("notify", fields::<RawNotify>()),
            ("sweep", fields::<RawSweep>()),
            ("commands", fields::<RawCommands>()),
            ("monitoring", fields::<RawMonitoring>()),
            ("direct", fields::<RawDirect>()),
            ("analytics", fields::<RawAnalytics>()),
            ("retention", fields::<RawRetention>()),
            ("rooms", fields::<RawRoom>()),
            ("routes", fields::<RawRoute>()),
            ("users", fields::<UserMapping>()),
            ("bitbucket", fields::<sites::RawSite>()),
        ];
        let mut known = 0;
        for (table, keys) in tables {
            assert!(!keys.is_empty(), "{table}");
            let entries: Vec<&toml::Table> = match *table {
                "" => vec![value.as_table().unwrap()],
                name => match value.get(name) {
                    Some(toml::Value::Table(t)) => vec![t],
                    Some(toml::Value::Array(list)) => {
                        list.iter().filter_map(|v| v.as_table()).collect()
                    }
                    other => panic!("[{name}] is not in pr-reminder.example.toml: {other:?}"),
                },
            };
            for key in keys {
                known += 1;
                assert!(
                    entries.iter().any(|t| t.contains_key(*key)),
                    "`{key}` of [{table}] is not in pr-reminder.example.toml"
                );
            }
        }
        // A table of the file not listed above would go unchecked.
        for key in fields::<RawSettings>() {
            let nested = value
                .get(key)
                .is_some_and(|v| v.is_table() || v.is_array() && key != "webhook_secret");
            if nested {
                assert!(tables.iter().any(|(t, _)| *t == key), "[{key}] unchecked");
            }
        }
        assert!(known > 60, "{known} keys");

        // It loads, and every setting of a table is its default; the [[...]] lists, which
        // have none, are examples.
        let vars = [
            ("PR_REMINDER_WEBHOOK_SECRET", "a-webhook-secret"),
            // The example's slack_channel room needs a bot token.
            ("PR_REMINDER_SLACK_BOT_TOKEN", "xoxb-a-slack-bot-token"),
        ];
        let mut example = load_text(&text, &vars).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let defaults = Settings::load(None, &env(&vars), false).unwrap();
        assert!(example.bitbucket.len() == 1 && example.commands.users.len() == 1);
        assert!(example.notify.rooms.len() >= 4 && example.notify.routes.len() >= 2);
        // The one table setting whose default is unset: the example shows a value.
        assert_eq!(example.notify.room_rate_per_minute, Some(30));
        assert_eq!(defaults.notify.room_rate_per_minute, None);
        example.notify.room_rate_per_minute = None;
        example.notify.rooms = defaults.notify.rooms.clone();
        example.notify.routes = defaults.notify.routes.clone();
        example.commands.users = Vec::new();
        example.bitbucket = Vec::new();
        assert_eq!(example.render(), defaults.render());
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }
}
