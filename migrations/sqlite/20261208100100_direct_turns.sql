-- Issue 24: real-time direct messages. What each person was last told they must act on, so that
-- a change of turn (asked to review, changes requested, a failed build, ready to merge) is news
-- once. A person's first look records what is already theirs without telling them.
CREATE TABLE direct_watch (
    person    TEXT NOT NULL PRIMARY KEY,      -- [[users]] bitbucket
    looked_at TEXT NOT NULL                   -- the last look (the service's clock)
) WITHOUT ROWID;

CREATE TABLE direct_turns (
    person         TEXT    NOT NULL,
    repository_key TEXT    NOT NULL,
    number         INTEGER NOT NULL,
    turn           TEXT    NOT NULL,          -- review, merge, changes_requested, build_failed, ...
    since          TEXT,                      -- the turn's start when seen (open_pull_requests.turn_since)
    seen_at        TEXT    NOT NULL,
    PRIMARY KEY (person, repository_key, number)
) WITHOUT ROWID;
