-- Reconciliation over Bitbucket's REST API (issue 10): what a pass needs to remember.

-- Repositories a pass went through at least once, by the configured site (its URL) and the
-- repository's name as the site lists it. The first pass over a repository announces nothing.
CREATE TABLE reconciled_repositories (
    site           TEXT NOT NULL,                -- the site's configured url
    full_name      TEXT NOT NULL COLLATE NOCASE, -- 'workspace/slug' or 'PROJECT/slug'
    first_pass_on  TEXT NOT NULL,
    last_pass_on   TEXT NOT NULL,
    last_requests  INTEGER NOT NULL,              -- requests the last successful pass used
    PRIMARY KEY (site, full_name)
) WITHOUT ROWID;

-- Source commits whose build statuses a pass fetched: not fetched again (requests are scarce)
-- unless one of their builds was still running.
CREATE TABLE reconciled_commits (
    repository_key TEXT NOT NULL,
    commit_hash    TEXT NOT NULL,                 -- as the PR names it (Cloud: 12 hex digits)
    checked_on     TEXT NOT NULL,
    PRIMARY KEY (repository_key, commit_hash)
) WITHOUT ROWID;
