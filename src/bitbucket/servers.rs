//! Which Bitbucket Data Center server a payload comes from: its identity, decided here and
//! nowhere else.
//!
//! A Data Center repository is keyed `datacenter/{server}/{id}` and a user
//! `datacenter/{server}/user/{id}`, where `server` is a `host[:port]`. One server may be known by
//! several base URLs: the address pr-reminder reaches it at (a `[[bitbucket]]` site's `url`: an
//! internal host, a container name, the Tomcat port), the public base URL Bitbucket writes in its
//! links, an address it had before a move behind a proxy. And servers before 5.14 send webhooks
//! without any link. The rules, from configuration where there is any:
//! - a delivery whose links name a site's `url` or one of its `aliases` belongs to that site: its
//!   server is the site's (`host[:port]` of `url`);
//! - a delivery without links belongs to the one Data Center site, where exactly one is
//!   configured; with none or several it is `unknown`;
//! - any other delivery keeps the host its links name (a server no site describes); the status
//!   page lists every identity, so that an operator sees two where they know of one server.
//!
//! REST answers always belong to the site they were asked of.

use crate::config::{server_name, Site};
use crate::domain::Flavour;

/// The server name of payloads that carry no http(s) link and belong to no single site.
pub const UNKNOWN: &str = "unknown";

/// One configured Data Center server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownServer {
    /// Its identity: `host[:port]` of the site's `url`.
    pub server: String,
    /// The site's URL, as reports name the site (`Site::name`).
    pub site: String,
    /// `host[:port]` of each of the site's `aliases`.
    pub aliases: Vec<String>,
}

impl KnownServer {
    /// Whether `server` (`host[:port]`) is this server's identity or one of its aliases.
    pub fn is_named(&self, server: &str) -> bool {
        self.server == server || self.aliases.iter().any(|a| a == server)
    }
}

/// The Data Center servers the configuration describes (`[[bitbucket]]` sites of
/// `kind = "datacenter"`). The default describes none: each delivery keeps what its links say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataCenterServers {
    known: Vec<KnownServer>,
}

impl DataCenterServers {
    /// The Data Center servers of `sites` (Cloud sites are left out).
    pub fn from_sites(sites: &[Site]) -> Self {
        DataCenterServers {
            known: sites
                .iter()
                .filter(|s| s.kind == Flavour::DataCenter)
                .map(|s| KnownServer {
                    server: s.server(),
                    site: s.name().to_owned(),
                    aliases: s.aliases.iter().filter_map(server_name).collect(),
                })
                .collect(),
        }
    }

    /// Every configured server.
    pub fn known(&self) -> &[KnownServer] {
        &self.known
    }

    /// The configured server that `server` names (its identity or an alias).
    pub fn site_of(&self, server: &str) -> Option<&KnownServer> {
        self.known.iter().find(|k| k.is_named(server))
    }

    /// The identity of a delivery whose http(s) links name `linked` (`host[:port]`, lower case),
    /// or which has none.
    pub fn resolve(&self, linked: Option<&str>) -> String {
        match linked {
            Some(server) => self
                .site_of(server)
                .map_or_else(|| server.to_owned(), |k| k.server.clone()),
            None => match self.known.as_slice() {
                [one] => one.server.clone(),
                _ => UNKNOWN.to_owned(),
            },
        }
    }

    /// The identities the configuration says are another's: `(from, into)` for each alias of
    /// each site, and `unknown` into the one site where exactly one is configured. What is
    /// stored under `from` is merged into `into` at start (`identity::heal`).
    pub fn merges(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .known
            .iter()
            .flat_map(|k| k.aliases.iter().map(|a| (a.clone(), k.server.clone())))
            .collect();
        if let [one] = self.known.as_slice() {
            out.push((UNKNOWN.to_owned(), one.server.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Credentials, SecretToken};

    fn site(url: &str, aliases: &[&str]) -> Site {
        Site {
            kind: Flavour::DataCenter,
            url: url.parse().unwrap(),
            credentials: Credentials::Bearer(SecretToken(secrecy::SecretString::from("t"))),
            repositories: Vec::new(),
            poll_interval: None,
            aliases: aliases.iter().map(|a| a.parse().unwrap()).collect(),
            webhook_url: None,
        }
    }

    #[test]
    fn links_that_name_a_site_or_an_alias_belong_to_it() {
        let servers = DataCenterServers::from_sites(&[site(
            "http://bb-internal:7990",
            &[
                "https://bitbucket.example.com",
                "http://bitbucket.example.com:7990",
            ],
        )]);
        for linked in [
            "bb-internal:7990",
            "bitbucket.example.com",
            "bitbucket.example.com:7990",
        ] {
            assert_eq!(
                servers.resolve(Some(linked)),
                "bb-internal:7990",
                "{linked}"
            );
        }
        assert_eq!(
            servers.resolve(Some("elsewhere.example")),
            "elsewhere.example"
        );
        // One Data Center site: link-less deliveries are its.
        assert_eq!(servers.resolve(None), "bb-internal:7990");
        assert_eq!(
            servers.merges(),
            [
                (
                    "bitbucket.example.com".to_owned(),
                    "bb-internal:7990".to_owned()
                ),
                (
                    "bitbucket.example.com:7990".to_owned(),
                    "bb-internal:7990".to_owned()
                ),
                (UNKNOWN.to_owned(), "bb-internal:7990".to_owned()),
            ]
        );
    }

    #[test]
    fn without_one_site_link_less_deliveries_are_unknown() {
        let none = DataCenterServers::default();
        assert_eq!(none.resolve(None), UNKNOWN);
        assert_eq!(none.resolve(Some("bb.example:7990")), "bb.example:7990");
        assert!(none.merges().is_empty());
        let two = DataCenterServers::from_sites(&[
            site("https://a.example", &[]),
            site("https://b.example", &["https://b-old.example"]),
        ]);
        assert_eq!(two.resolve(None), UNKNOWN);
        assert_eq!(two.resolve(Some("b-old.example")), "b.example");
        assert_eq!(
            two.merges(),
            [("b-old.example".to_owned(), "b.example".to_owned())],
            "unknown is nobody's with two sites"
        );
    }
}
