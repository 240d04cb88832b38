//! `[[bitbucket]]`: the Bitbucket sites whose REST API reconciliation reads (backfill, repairs
//! of missed deliveries, poll-only deployments). For a single site the same keys come from
//! `PR_REMINDER_BITBUCKET_KIND`, `_URL`, `_TOKEN`, `_USERNAME`, `_REPOSITORIES` and `_ALIASES`.
//! A Data Center site is also the identity of its server: its `url` and `aliases` are every base
//! URL the server is known by (see `bitbucket::servers`).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{ConfigError, SecretToken};
use crate::domain::Flavour;

/// Bitbucket Cloud's REST API base, the default `url` of a `kind = "cloud"` site.
pub const CLOUD_API_URL: &str = "https://api.bitbucket.org/2.0";

/// The single-site variables and the key each stands for.
pub(super) const SITE_ENV_VARS: &[(&str, &str)] = &[
    ("PR_REMINDER_BITBUCKET_KIND", "kind"),
    ("PR_REMINDER_BITBUCKET_URL", "url"),
    ("PR_REMINDER_BITBUCKET_TOKEN", "token"),
    ("PR_REMINDER_BITBUCKET_USERNAME", "username"),
    ("PR_REMINDER_BITBUCKET_REPOSITORIES", "repositories"),
    (
        "PR_REMINDER_BITBUCKET_POLL_INTERVAL_MINUTES",
        "poll_interval_minutes",
    ),
    ("PR_REMINDER_BITBUCKET_ALIASES", "aliases"),
    ("PR_REMINDER_BITBUCKET_WEBHOOK_URL", "webhook_url"),
];

/// How often a poll-only deployment's sites are reconciled when they say nothing (minutes).
pub const POLL_ONLY_DEFAULT_MINUTES: f64 = 15.0;

/// One Bitbucket site to reconcile against. `Debug` never shows the token.
#[derive(Debug, Clone)]
pub struct Site {
    /// Cloud or Data Center.
    pub kind: Flavour,
    /// Cloud: the API base (`https://api.bitbucket.org/2.0`); Data Center: the server's base URL
    /// (REST under `/rest/...`). No trailing slash.
    pub url: reqwest::Url,
    /// How requests authenticate.
    pub credentials: Credentials,
    /// Which repositories: `workspace/slug` (Cloud), `PROJECT/slug` (Data Center), or
    /// `owner/*` for every repository there.
    pub repositories: Vec<RepositorySelector>,
    /// Reconcile on this interval (`poll_interval_minutes`), if set.
    pub poll_interval: Option<Duration>,
    /// Data Center: the other base URLs the same server is known by (`aliases`): its public
    /// address when `url` is an internal one, an address it had before a move. Deliveries whose
    /// links name one of them belong to this site. Empty on Cloud.
    pub aliases: Vec<reqwest::Url>,
    /// The public URL Bitbucket calls with deliveries (`webhook_url`, e.g.
    /// `https://pr.example.com/webhooks/bitbucket`): what `pr-reminder connect` installs, and
    /// how it tells its own hooks from others (a hook is its own when it points here).
    pub webhook_url: Option<reqwest::Url>,
}

impl Site {
    /// The site as reports and logs name it: its URL (which holds no secret).
    pub fn name(&self) -> &str {
        self.url.as_str().trim_end_matches('/')
    }

    /// `host[:port]` of the URL: on Data Center, the server part of repository keys, the same
    /// that a webhook payload's links give (`datacenter/{server}/{id}`).
    pub fn server(&self) -> String {
        server_name(&self.url).unwrap_or_else(|| "unknown".to_owned())
    }
}

/// `host[:port]` of an http(s) URL, lower case, without a default port: how a Data Center
/// server is named in keys (`datacenter/{server}/{id}`). `None` for another scheme or no host.
pub fn server_name(url: &reqwest::Url) -> Option<String> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// Credentials for a site's REST API (Bitbucket's documented forms).
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `Authorization: Bearer <token>`: a Cloud repository/project/workspace access token, or a
    /// Data Center HTTP access token.
    Bearer(SecretToken),
    /// `Authorization: Basic username:token`: an Atlassian account's e-mail and API token (Cloud).
    Basic {
        /// The account's e-mail address (or Data Center user name).
        username: String,
        /// The API token.
        token: SecretToken,
    },
}

/// `owner/slug`, or `owner/*` for every repository of a Cloud workspace or Data Center project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySelector {
    /// The Cloud workspace or Data Center project key.
    pub owner: String,
    /// The repository slug; `None` for `*`.
    pub slug: Option<String>,
}

impl RepositorySelector {
    /// Reads `owner/slug` or `owner/*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (owner, slug) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not owner/slug or owner/*"))?;
        let plain = |s: &str| {
            !s.is_empty()
                && !s.contains('/')
                && s.chars()
                    .all(|c| !c.is_whitespace() && !matches!(c, '*' | '?' | '[' | ']' | '{' | '}'))
        };
        if !plain(owner) {
            return Err(format!("`{text}`: `{owner}` is not a workspace or project"));
        }
        if slug == "*" {
            return Ok(RepositorySelector {
                owner: owner.to_owned(),
                slug: None,
            });
        }
        if !plain(slug) {
            return Err(format!(
                "`{text}`: `{slug}` is not a repository slug (only a whole `*` is a pattern)"
            ));
        }
        Ok(RepositorySelector {
            owner: owner.to_owned(),
            slug: Some(slug.to_owned()),
        })
    }

    /// Whether `full_name` (`owner/slug`, any case) is one this selector names.
    pub fn covers(&self, full_name: &str) -> bool {
        let Some((owner, slug)) = full_name.split_once('/') else {
            return false;
        };
        owner.eq_ignore_ascii_case(&self.owner)
            && self
                .slug
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(slug))
    }
}

impl fmt::Display for RepositorySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.slug.as_deref().unwrap_or("*"))
    }
}

/// One `[[bitbucket]]` table as the file spells it.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    kind: Option<String>,
    url: Option<String>,
    token: Option<String>,
    username: Option<String>,
    repositories: Option<Vec<String>>,
    poll_interval_minutes: Option<f64>,
    aliases: Option<Vec<String>>,
    webhook_url: Option<String>,
}

/// The `[[bitbucket]]` tables with the single-site variables laid over them: with no table, the
/// variables make one; with one, they override its keys one by one; with several, they are
/// refused (which site would they mean?).
pub(super) fn resolve_sites(
    mut raw: Vec<RawSite>,
    env: &HashMap<String, String>,
) -> Result<Vec<Site>, ConfigError> {
    let set: Vec<(&str, &str, &String)> = SITE_ENV_VARS
        .iter()
        // An empty variable is an unset one (compose passes `${VAR:-}` through as empty).
        .filter_map(|&(var, key)| {
            env.get(var)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (var, key, v))
        })
        .collect();
    // Named in errors when one of the others is set: `_TOKEN` empty beside `_KIND` is missing.
    let named: Vec<(&str, &str)> = SITE_ENV_VARS
        .iter()
        .filter(|(var, _)| env.contains_key(*var))
        .map(|&(var, key)| (var, key))
        .collect();
    let mut from_env: HashMap<&str, &str> = HashMap::new();
    if !set.is_empty() {
        if raw.len() > 1 {
            return Err(ConfigError::new(
                set[0].0,
                "the PR_REMINDER_BITBUCKET_* variables describe one site, but the file has \
                 several [[bitbucket]] tables: set the keys in the file instead",
            ));
        }
        if raw.is_empty() {
            // The variables make the site: each of its keys is theirs, set or missing.
            raw.push(RawSite::default());
            for &(var, key) in SITE_ENV_VARS {
                from_env.insert(key, var);
            }
        }
        let site = &mut raw[0];
        for &(var, key) in &named {
            from_env.insert(key, var);
        }
        for (var, key, value) in set {
            match key {
                "poll_interval_minutes" => {
                    let minutes = value.trim().parse::<f64>().map_err(|_| {
                        ConfigError::new(
                            format!("bitbucket[0].poll_interval_minutes ({var})"),
                            format!("`{}` is not a number of minutes", value.trim()),
                        )
                    })?;
                    site.poll_interval_minutes = Some(minutes);
                }
                "kind" => site.kind = Some(value.clone()),
                "url" => site.url = Some(value.clone()),
                "token" => site.token = Some(value.clone()),
                "username" => site.username = Some(value.clone()).filter(|v| !v.trim().is_empty()),
                "aliases" => {
                    site.aliases = Some(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                "webhook_url" => site.webhook_url = Some(value.clone()),
                _ => {
                    // "repositories"
                    site.repositories = Some(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
            }
        }
    }
    let sites: Vec<Site> = raw
        .into_iter()
        .enumerate()
        .map(|(i, site)| {
            let key = |name: &str| match from_env.get(name) {
                Some(var) if i == 0 => format!("bitbucket[{i}].{name} ({var})"),
                _ => format!("bitbucket[{i}].{name}"),
            };
            site.resolve(&key)
        })
        .collect::<Result<_, _>>()?;
    // One server, one site: a base URL (url or alias) of a Data Center site must not name the
    // server of another one, or a delivery's links would belong to both.
    let mut claimed: Vec<(String, usize)> = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        if site.kind != Flavour::DataCenter {
            continue;
        }
        let names = std::iter::once(&site.url)
            .chain(&site.aliases)
            .filter_map(server_name);
        for name in names {
            if let Some((_, other)) = claimed.iter().find(|(n, j)| *n == name && *j != i) {
                return Err(ConfigError::new(
                    format!("bitbucket[{i}]"),
                    format!(
                        "its url or aliases name {name}, which bitbucket[{other}] names too: one \
                         Data Center server is one [[bitbucket]] site"
                    ),
                ));
            }
            claimed.push((name, i));
        }
    }
    Ok(sites)
}

impl RawSite {
    fn resolve(self, key: &dyn Fn(&str) -> String) -> Result<Site, ConfigError> {
        let kind = match self.kind.as_deref().map(|k| k.trim().to_ascii_lowercase()) {
            Some(k) if k == "cloud" => Flavour::Cloud,
            Some(k) if k == "datacenter" => Flavour::DataCenter,
            Some(other) => {
                return Err(ConfigError::new(
                    key("kind"),
                    format!("`{other}` is not one of cloud, datacenter"),
                ))
            }
            None => {
                return Err(ConfigError::new(
                    key("kind"),
                    "missing: cloud or datacenter",
                ))
            }
        };
        let url_text = match (self.url.as_deref().map(str::trim), kind) {
            (Some(url), _) if !url.is_empty() => url.to_owned(),
            (_, Flavour::Cloud) => CLOUD_API_URL.to_owned(),
            (_, Flavour::DataCenter) => return Err(ConfigError::new(
                key("url"),
                "missing: the Data Center server's base URL, e.g. https://bitbucket.example.com",
            )),
        };
        let url = reqwest::Url::parse(url_text.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                // Not echoed: a URL pasted by mistake may carry a token.
                ConfigError::new(
                    key("url"),
                    "is not an http(s) URL (the value is not shown: it may hold a token)",
                )
            })?;
        if !url.username().is_empty() || url.password().is_some() {
            // Never echo it: the user part may hold a credential.
            return Err(ConfigError::new(
                key("url"),
                "must not carry credentials; use token (and username)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::new(
                key("url"),
                "must have no query or fragment (the value is not shown: a query may hold a \
                 token; give the token in token)",
            ));
        }
        let token = self
            .token
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    key("token"),
                    "missing: an access token with read access to pull requests and repositories",
                )
            })?;
        let token = SecretToken(SecretString::from(token));
        let credentials = match self.username.map(|u| u.trim().to_owned()) {
            Some(username) if !username.is_empty() => {
                if username.contains(':') {
                    return Err(ConfigError::new(key("username"), "must not contain `:`"));
                }
                Credentials::Basic { username, token }
            }
            _ => Credentials::Bearer(token),
        };
        let list = self.repositories.unwrap_or_default();
        if list.is_empty() {
            return Err(ConfigError::new(
                key("repositories"),
                "missing: at least one repository (owner/slug or owner/*)",
            ));
        }
        let repositories = list
            .iter()
            .map(|r| RepositorySelector::parse(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::new(key("repositories"), e))?;
        let poll_interval = match self.poll_interval_minutes {
            None => None,
            Some(m) if m.is_finite() && (1.0..=1440.0).contains(&m) => {
                Some(Duration::from_secs_f64(m * 60.0))
            }
            Some(m) => {
                return Err(ConfigError::new(
                    key("poll_interval_minutes"),
                    format!("{m} is not between 1 and 1440"),
                ))
            }
        };
        let mut aliases: Vec<reqwest::Url> = Vec::new();
        for (i, text) in self.aliases.unwrap_or_default().iter().enumerate() {
            if kind == Flavour::Cloud {
                return Err(ConfigError::new(
                    key("aliases"),
                    "only a Data Center site has aliases (other base URLs of the same server)",
                ));
            }
            let alias = reqwest::Url::parse(text.trim().trim_end_matches('/'))
                .ok()
                .filter(|u| {
                    server_name(u).is_some()
                        && u.username().is_empty()
                        && u.password().is_none()
                        && u.query().is_none()
                        && u.fragment().is_none()
                })
                .ok_or_else(|| {
                    // Not echoed, as for `url`.
                    ConfigError::new(
                        key("aliases"),
                        format!(
                            "entry {} is not an http(s) base URL without credentials, query or \
                             fragment (e.g. https://bitbucket.example.com; the value is not shown)",
                            i + 1
                        ),
                    )
                })?;
            if server_name(&alias) == server_name(&url) {
                return Err(ConfigError::new(
                    key("aliases"),
                    format!(
                        "entry {} names the same server as url ({}); leave it out",
                        i + 1,
                        server_name(&url).unwrap_or_default()
                    ),
                ));
            }
            if !aliases
                .iter()
                .any(|a| server_name(a) == server_name(&alias))
            {
                aliases.push(alias);
            }
        }
        let webhook_url = match self.webhook_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                Some(parse_webhook_url(text).map_err(|e| ConfigError::new(key("webhook_url"), e))?)
            }
        };
        Ok(Site {
            kind,
            url,
            credentials,
            repositories,
            poll_interval,
            aliases,
            webhook_url,
        })
    }
}

/// `webhook_url`: an absolute http(s) URL without credentials, query or fragment (Bitbucket
/// signs deliveries with the webhook secret; nothing secret belongs in the URL, which Bitbucket
/// shows to every admin of the repository). The value is never echoed in an error.
fn parse_webhook_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or("is not an http(s) URL such as https://pr.example.com/webhooks/bitbucket")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials: deliveries are signed with webhook_secret".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(
            "must have no query or fragment (the value is not shown: a query may hold a token)"
                .into(),
        );
    }
    Ok(url)
}

/// The sites as `check-config` prints them, tokens redacted.
pub(super) fn render(sites: &[Site]) -> String {
    let mut out = String::new();
    for site in sites {
        let (username, auth) = match &site.credentials {
            Credentials::Bearer(_) => ("# username: not set".to_owned(), "Bearer"),
            Credentials::Basic { username, .. } => (format!("username = \"{username}\""), "Basic"),
        };
        let aliases = if site.aliases.is_empty() {
            String::new()
        } else {
            format!(
                "aliases = {:?}\n",
                site.aliases
                    .iter()
                    .map(|a| a.as_str().trim_end_matches('/'))
                    .collect::<Vec<_>>()
            )
        };
        out.push_str(&format!(
            "\n[[bitbucket]]\nkind = \"{}\"\nurl = \"{}\"\n{aliases}token = \"[redacted]\" # sent as {}\n\
             {}\nrepositories = {:?}\n{}\n{}\n",
            site.kind.as_str(),
            site.name(),
            auth,
            username,
            site.repositories
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            site.poll_interval.map_or(
                "# poll_interval_minutes: not set (reconcile on demand only)".to_owned(),
                |d| format!("poll_interval_minutes = {}", d.as_secs_f64() / 60.0)
            ),
            site.webhook_url.as_ref().map_or(
                "# webhook_url: not set (pr-reminder connect needs it)".to_owned(),
                |u| format!("webhook_url = \"{u}\"")
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let s = RepositorySelector::parse("acme/*").unwrap();
        assert_eq!((s.owner.as_str(), s.slug.as_deref()), ("acme", None));
        assert!(s.covers("ACME/api") && !s.covers("other/api"));
        let s = RepositorySelector::parse(" acme/api ").unwrap();
        assert!(s.covers("acme/API") && !s.covers("acme/web"));
        assert_eq!(s.to_string(), "acme/api");
        for bad in ["acme", "acme/a*", "/api", "acme/", "a/b/c", "*/api"] {
            assert!(RepositorySelector::parse(bad).is_err(), "{bad}");
        }
    }

    fn load(pairs: &[(&str, &str)]) -> Result<crate::config::Settings, ConfigError> {
        let env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::config::Settings::load(None, &env, false)
    }

    #[test]
    fn one_site_from_the_environment_is_poll_only_and_never_shows_its_token() {
        let settings = load(&[
            ("PR_REMINDER_BITBUCKET_KIND", "cloud"),
            ("PR_REMINDER_BITBUCKET_TOKEN", "s3cret-token-value"),
            ("PR_REMINDER_BITBUCKET_REPOSITORIES", "acme/api, acme/*"),
        ])
        .unwrap();
        let site = &settings.bitbucket[0];
        assert_eq!(site.name(), CLOUD_API_URL);
        assert_eq!(site.repositories.len(), 2);
        assert!(matches!(site.credentials, Credentials::Bearer(_)));
        assert!(matches!(
            settings.signature,
            crate::config::SignaturePolicy::PollOnly
        ));
        let shown = format!("{}\n{settings:?}", settings.render());
        assert!(!shown.contains("s3cret-token-value"), "{shown}");
        assert!(shown.contains("token = \"[redacted]\""), "{shown}");
        assert_eq!(
            render(&settings.bitbucket),
            "\n[[bitbucket]]\nkind = \"cloud\"\nurl = \"https://api.bitbucket.org/2.0\"\n\
             token = \"[redacted]\" # sent as Bearer\n# username: not set\n\
             repositories = [\"acme/api\", \"acme/*\"]\n\
             poll_interval_minutes = 15\n\
             # webhook_url: not set (pr-reminder connect needs it)\n"
        );
        assert_eq!(
            site.poll_interval,
            Some(Duration::from_secs(15 * 60)),
            "poll-only polls every 15 minutes unless told otherwise"
        );

        let dc = load(&[
            ("PR_REMINDER_BITBUCKET_KIND", "datacenter"),
            ("PR_REMINDER_BITBUCKET_URL", "https://BB.example:7990/"),
            ("PR_REMINDER_BITBUCKET_USERNAME", "me@example.com"),
            ("PR_REMINDER_BITBUCKET_TOKEN", "t"),
            ("PR_REMINDER_BITBUCKET_REPOSITORIES", "PRJ/api"),
        ])
        .unwrap();
        assert_eq!(dc.bitbucket[0].server(), "bb.example:7990");
        assert!(matches!(
            dc.bitbucket[0].credentials,
            Credentials::Basic { .. }
        ));
    }

    fn load_file(toml: &str) -> Result<crate::config::Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pr-reminder.toml");
        std::fs::write(&path, toml).unwrap();
        let env = [("PR_REMINDER_WEBHOOK_SECRET", "a-webhook-secret")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::config::Settings::load(Some(&path), &env, false)
    }

    #[test]
    fn a_datacenter_site_names_the_other_base_urls_of_its_server() {
        let settings = load_file(
            "[[bitbucket]]\nkind = \"datacenter\"\nurl = \"http://bb-internal:7990/\"\n\
             aliases = [\"https://Bitbucket.Example.com/\", \"https://bitbucket.example.com:443\", \
             \"http://bb-old.example.com:7990\"]\ntoken = \"t\"\nrepositories = [\"PRJ/*\"]\n",
        )
        .unwrap();
        let site = &settings.bitbucket[0];
        let names: Vec<Option<String>> = site.aliases.iter().map(server_name).collect();
        assert_eq!(
            names,
            [
                Some("bitbucket.example.com".to_owned()),
                Some("bb-old.example.com:7990".to_owned())
            ],
            "one entry per server: the default port is no other server"
        );
        assert!(render(&settings.bitbucket).contains(
            "url = \"http://bb-internal:7990\"\naliases = [\"https://bitbucket.example.com\", \
             \"http://bb-old.example.com:7990\"]\n"
        ));
        let env = load(&[
            ("PR_REMINDER_WEBHOOK_SECRET", "a-webhook-secret"),
            ("PR_REMINDER_BITBUCKET_KIND", "datacenter"),
            ("PR_REMINDER_BITBUCKET_URL", "http://bb-internal:7990"),
            ("PR_REMINDER_BITBUCKET_TOKEN", "t"),
            ("PR_REMINDER_BITBUCKET_REPOSITORIES", "PRJ/api"),
            (
                "PR_REMINDER_BITBUCKET_ALIASES",
                "https://bitbucket.example.com, ",
            ),
        ])
        .unwrap();
        assert_eq!(
            env.bitbucket[0].aliases[0].as_str(),
            "https://bitbucket.example.com/"
        );

        let site = |extra: &str| {
            format!(
                "[[bitbucket]]\nkind = \"datacenter\"\nurl = \"https://bb.example\"\ntoken = \"t\"\n\
                 repositories = [\"PRJ/*\"]\n{extra}"
            )
        };
        for (extra, error) in [
            (
                "aliases = [\"ftp://bb.example\"]",
                "invalid configuration: bitbucket[0].aliases: entry 1 is not an http(s) base URL",
            ),
            (
                "aliases = [\"https://me:SEKRIT3@bb2.example\"]",
                "invalid configuration: bitbucket[0].aliases: entry 1 is not",
            ),
            (
                "aliases = [\"https://BB.example:443/\"]",
                "invalid configuration: bitbucket[0].aliases: entry 1 names the same server as url (bb.example)",
            ),
            (
                "\n[[bitbucket]]\nkind = \"datacenter\"\nurl = \"https://other.example\"\n\
                 aliases = [\"https://bb.example/bitbucket\"]\ntoken = \"t\"\nrepositories = [\"X/*\"]\n",
                "invalid configuration: bitbucket[1]: its url or aliases name bb.example, which \
                 bitbucket[0] names too",
            ),
        ] {
            let err = load_file(&site(extra)).unwrap_err().to_string();
            assert!(err.starts_with(error), "{extra}: {err}");
            assert!(!err.contains("SEKRIT3"), "{err}");
        }
        let err = load_file(
            "[[bitbucket]]\nkind = \"cloud\"\ntoken = \"t\"\nrepositories = [\"a/*\"]\n\
             aliases = [\"https://bitbucket.org\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("invalid configuration: bitbucket[0].aliases: only a Data Center site"),
            "{err}"
        );
    }

    #[test]
    fn the_poll_interval_from_the_environment() {
        let base = [
            ("PR_REMINDER_WEBHOOK_SECRET", "a-webhook-secret"),
            ("PR_REMINDER_BITBUCKET_KIND", "cloud"),
            ("PR_REMINDER_BITBUCKET_TOKEN", "t"),
            ("PR_REMINDER_BITBUCKET_REPOSITORIES", "acme/api"),
        ];
        let with_webhooks = load(&base).unwrap();
        assert_eq!(
            with_webhooks.bitbucket[0].poll_interval, None,
            "on demand only"
        );
        assert!(render(&with_webhooks.bitbucket)
            .contains("# poll_interval_minutes: not set (reconcile on demand only)\n"));
        let mut pairs = base.to_vec();
        pairs.push(("PR_REMINDER_BITBUCKET_POLL_INTERVAL_MINUTES", "30"));
        let polled = load(&pairs).unwrap();
        assert_eq!(
            polled.bitbucket[0].poll_interval,
            Some(Duration::from_secs(30 * 60))
        );
        assert!(render(&polled.bitbucket).contains("\npoll_interval_minutes = 30\n"));
        pairs.pop();
        pairs.push(("PR_REMINDER_BITBUCKET_POLL_INTERVAL_MINUTES", "soon"));
        assert_eq!(
            load(&pairs).unwrap_err().to_string(),
            "invalid configuration: bitbucket[0].poll_interval_minutes \
             (PR_REMINDER_BITBUCKET_POLL_INTERVAL_MINUTES): `soon` is not a number of minutes"
        );
    }

    #[test]
    fn the_webhook_url_connect_installs() {
        let base = [
            ("PR_REMINDER_WEBHOOK_SECRET", "a-webhook-secret"),
            ("PR_REMINDER_BITBUCKET_KIND", "cloud"),
            ("PR_REMINDER_BITBUCKET_TOKEN", "t"),
            ("PR_REMINDER_BITBUCKET_REPOSITORIES", "acme/*"),
        ];
        let with = |url: &'static str| {
            let mut pairs = base.to_vec();
            pairs.push(("PR_REMINDER_BITBUCKET_WEBHOOK_URL", url));
            load(&pairs)
        };
        let settings = with(" https://pr.example.com/webhooks/bitbucket ").unwrap();
        assert_eq!(
            settings.bitbucket[0]
                .webhook_url
                .as_ref()
                .map(|u| u.as_str()),
            Some("https://pr.example.com/webhooks/bitbucket")
        );
        assert!(render(&settings.bitbucket)
            .ends_with("\nwebhook_url = \"https://pr.example.com/webhooks/bitbucket\"\n"));
        assert_eq!(with("").unwrap().bitbucket[0].webhook_url, None);
        for (bad, hidden) in [
            ("https://pr.example.com/hook?token=SEKRIT3", "SEKRIT3"),
            ("https://me:SEKRIT4@pr.example.com/hook", "SEKRIT4"),
            ("pr.example.com/SEKRIT5", "SEKRIT5"),
        ] {
            let err = with(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(
                    "invalid configuration: bitbucket[0].webhook_url \
                     (PR_REMINDER_BITBUCKET_WEBHOOK_URL): "
                ) && !err.contains(hidden),
                "{err}"
            );
        }
    }

    #[test]
    fn empty_variables_are_unset() {
        let settings = load(&[
            ("PR_REMINDER_WEBHOOK_SECRET", "a-webhook-secret"),
            ("PR_REMINDER_BITBUCKET_KIND", ""),
            ("PR_REMINDER_BITBUCKET_URL", " "),
            ("PR_REMINDER_BITBUCKET_TOKEN", ""),
            ("PR_REMINDER_BITBUCKET_USERNAME", ""),
            ("PR_REMINDER_BITBUCKET_REPOSITORIES", ""),
        ])
        .unwrap();
        assert!(settings.bitbucket.is_empty());
    }

    #[test]
    fn bad_values_name_the_key() {
        let base = [
            ("PR_REMINDER_BITBUCKET_KIND", "cloud"),
            ("PR_REMINDER_BITBUCKET_TOKEN", "t"),
            ("PR_REMINDER_BITBUCKET_REPOSITORIES", "acme/api"),
        ];
        let with = |extra: (&'static str, &'static str)| {
            let mut pairs: Vec<(&str, &str)> = base
                .iter()
                .copied()
                .filter(|(k, _)| *k != extra.0)
                .collect();
            pairs.push(extra);
            load(&pairs).unwrap_err().to_string()
        };
        assert_eq!(
            with(("PR_REMINDER_BITBUCKET_KIND", "gitlab")),
            "invalid configuration: bitbucket[0].kind (PR_REMINDER_BITBUCKET_KIND): `gitlab` is not one of cloud, datacenter"
        );
        assert!(with(("PR_REMINDER_BITBUCKET_REPOSITORIES", "acme"))
            .starts_with("invalid configuration: bitbucket[0].repositories (PR_REMINDER_BITBUCKET_REPOSITORIES): `acme` is not owner/slug"));
        assert!(with(("PR_REMINDER_BITBUCKET_URL", "ftp://x"))
            .starts_with("invalid configuration: bitbucket[0].url (PR_REMINDER_BITBUCKET_URL)"));
        let secret = with(("PR_REMINDER_BITBUCKET_URL", "https://user:pw@host"));
        assert!(!secret.contains("pw"), "{secret}");
        let secret = with((
            "PR_REMINDER_BITBUCKET_URL",
            "https://bb.example/2.0?access_token=SEKRIT1",
        ));
        assert!(!secret.contains("SEKRIT1"), "{secret}");
        let secret = with(("PR_REMINDER_BITBUCKET_URL", "not a url SEKRIT2"));
        assert!(!secret.contains("SEKRIT2"), "{secret}");
        // A site made by the variables names them for what is missing too.
        assert_eq!(
            load(&[("PR_REMINDER_BITBUCKET_TOKEN", "t"), ("PR_REMINDER_BITBUCKET_REPOSITORIES", "a/b")])
                .unwrap_err()
                .to_string(),
            "invalid configuration: bitbucket[0].kind (PR_REMINDER_BITBUCKET_KIND): missing: cloud or datacenter"
        );
        assert!(with(("PR_REMINDER_BITBUCKET_TOKEN", " ")).starts_with(
            "invalid configuration: bitbucket[0].token (PR_REMINDER_BITBUCKET_TOKEN): missing"
        ));
    }
}
