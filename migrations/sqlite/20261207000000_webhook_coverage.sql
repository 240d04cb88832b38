-- Issue 26, drift made visible. Each reconciliation pass over a site with a webhook_url reads the
-- site's hooks (workspace or project hooks, then the repository's own) and records, per
-- repository, whether pr-reminder's hook (the one pointing at webhook_url) covers it, by what, and
-- what it lacks. The status page and pr_reminder_webhooks{state} read it.
CREATE TABLE webhook_coverage (
    site           TEXT NOT NULL,  -- the site's configured url
    repository     TEXT NOT NULL,  -- 'workspace/slug' or 'PROJECT/slug', lowercased
    full_name      TEXT NOT NULL,    -- the name as configured or listed
    flavour        TEXT NOT NULL CHECK (flavour IN ('cloud', 'datacenter')),
    state          TEXT NOT NULL
                   CHECK (state IN ('covered', 'incomplete', 'inactive', 'missing', 'unknown')),
    scope          TEXT CHECK (scope IN ('workspace', 'project', 'repository')), -- the hook judged
    hook           TEXT,             -- its id (Cloud uuid, Data Center id)
    events_missing TEXT,             -- comma-separated event keys it lacks
    detail         TEXT,             -- why unknown (what the token needs), or a note
    checked_on     TEXT NOT NULL,
    PRIMARY KEY (site, repository)
);

-- The last processed delivery per repository, summarised from deliveries by reconciliation
-- (never by ingest: the webhook path writes nothing more). Readers add the deliveries after
-- max(last_id), a range of the primary key.
CREATE TABLE repository_deliveries (
    flavour     TEXT NOT NULL,
    repository  TEXT NOT NULL,     -- lower(deliveries.repository)
    last_id     INTEGER NOT NULL,        -- deliveries.id of the newest one summarised
    received_at TEXT NOT NULL,     -- its received_at
    PRIMARY KEY (flavour, repository)
);
CREATE INDEX repository_deliveries_last_id ON repository_deliveries (last_id);
