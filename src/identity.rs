//! One Bitbucket Data Center server, one identity (see `bitbucket::servers` for the rules): what
//! is stored under two identities of one server is merged into one (`store::identities::merge`),
//! at start for everything the configuration and the data say (`Identities::heal`), and as
//! deliveries arrive for what they reveal (`Identities::settle`).
//!
//! What the data alone says: a repository stored under `unknown` (a server that sent no links)
//! and under exactly one other identity with the same id and the same name is one repository,
//! whose server started to send links (an upgrade to 5.14 or later). Two identities that both
//! come from links are never merged by guesswork: the configuration's `aliases` say so, and the
//! status page lists every identity.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::bitbucket::servers::{DataCenterServers, UNKNOWN};
use crate::domain::{Change, RepositoryKey};
use crate::store::identities::{self, Merged};
use crate::store::Db;

/// The configured Data Center servers, and what this process has already settled.
pub struct Identities {
    servers: DataCenterServers,
    db: Db,
    /// Repository keys of deliveries already settled by this process (one look each).
    settled: Mutex<HashSet<RepositoryKey>>,
}

impl Identities {
    /// The identities of `servers` over `db`.
    pub fn new(servers: DataCenterServers, db: Db) -> Self {
        Identities {
            servers,
            db,
            settled: Mutex::new(HashSet::new()),
        }
    }

    /// The configured Data Center servers.
    pub fn servers(&self) -> &DataCenterServers {
        &self.servers
    }

    /// At start: merges what is stored under a configured alias (and, with one Data Center site,
    /// under `unknown`) into its site's identity, then each repository stored under `unknown`
    /// and exactly one other identity with its id and name. Logs what it merged.
    pub async fn heal(&self) -> anyhow::Result<()> {
        for (from, into) in self.servers.merges() {
            let pairs: Vec<(RepositoryKey, RepositoryKey)> =
                identities::datacenter_repositories(&self.db)
                    .await?
                    .into_iter()
                    .filter_map(|(key, _)| {
                        let (server, id) = key.datacenter_parts()?;
                        (server == from)
                            .then(|| (key.clone(), RepositoryKey::datacenter(&into, id)))
                    })
                    .collect();
            let merged = identities::merge(&self.db, &pairs, Some((&from, &into))).await?;
            report(
                &merged,
                &from,
                &into,
                "the configuration names them one server",
            );
        }
        let stored = identities::datacenter_repositories(&self.db).await?;
        let pairs: Vec<(RepositoryKey, RepositoryKey)> = stored
            .iter()
            .filter_map(|(key, name)| {
                let (server, id) = key.datacenter_parts()?;
                if server != UNKNOWN {
                    return None;
                }
                let mut twins = stored.iter().filter(|(other, other_name)| {
                    other
                        .datacenter_parts()
                        .is_some_and(|(s, i)| s != UNKNOWN && i == id)
                        && other_name.eq_ignore_ascii_case(name)
                });
                match (twins.next(), twins.next()) {
                    (Some((twin, _)), None) => Some((key.clone(), twin.clone())),
                    _ => None,
                }
            })
            .collect();
        if !pairs.is_empty() {
            let merged = identities::merge(&self.db, &pairs, None).await?;
            report(
                &merged,
                UNKNOWN,
                "the identity their links name",
                "the same repositories arrived with links",
            );
        }
        Ok(())
    }

    /// A delivery's change before it is stored. A Data Center PR from a server that sent no
    /// links (`unknown`) is the repository stored under the one other identity with its id and
    /// name, where there is one; a PR whose links name a server takes over what was stored for
    /// its repository under `unknown` (the server started to send links), unless another
    /// identity claims the same repository. Anything else is returned as it is; a database
    /// error is logged and changes nothing.
    pub async fn settle(&self, change: Change) -> Change {
        let Change::PullRequest(pr) = change else {
            return change;
        };
        let key = pr.repository.key.clone();
        let Some((server, id)) = key.datacenter_parts() else {
            return Change::PullRequest(pr);
        };
        if self.settled.lock().is_ok_and(|s| s.contains(&key)) {
            return Change::PullRequest(pr);
        }
        let twins = match identities::twins(&self.db, id, &pr.repository.full_name).await {
            Ok(twins) => twins,
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "cannot look up the repository's other identities");
                return Change::PullRequest(pr);
            }
        };
        let linked: Vec<&RepositoryKey> = twins
            .iter()
            .filter(|k| k.datacenter_parts().is_some_and(|(s, _)| s != UNKNOWN))
            .collect();
        let unknown = RepositoryKey::datacenter(UNKNOWN, id);
        let stored_unknown = twins.contains(&unknown);
        let (pr, into) = if server == UNKNOWN {
            match linked.as_slice() {
                [one] => {
                    let into = (*one).clone();
                    let target = into.datacenter_parts().map(|(s, _)| s.to_owned());
                    (Box::new(pr.on_server(&target.unwrap_or_default())), into)
                }
                _ => return Change::PullRequest(pr),
            }
        } else if linked.iter().all(|k| **k == key) {
            (pr, key.clone())
        } else {
            // Another identity with links has this repository too: not merged by guesswork.
            return Change::PullRequest(pr);
        };
        if stored_unknown {
            match identities::merge(&self.db, &[(unknown, into.clone())], None).await {
                Ok(merged) => report(&merged, UNKNOWN, into.as_str(), "links appeared"),
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), repository = %into, "cannot merge the repository's link-less rows")
                }
            }
        }
        if server != UNKNOWN {
            if let Ok(mut settled) = self.settled.lock() {
                settled.insert(key);
            }
        }
        Change::PullRequest(pr)
    }
}

fn report(merged: &Merged, from: &str, into: &str, why: &str) {
    if merged.repositories > 0 {
        tracing::warn!(
            repositories = merged.repositories,
            pull_requests = merged.pull_requests,
            from,
            into,
            "Data Center rows stored under two identities of one server merged ({why})"
        );
    }
}
