-- Issue 24: personal reminders in direct messages.
--
-- What a person changed for themselves with `/reviews dm|remind|away` (the file's [[users]]
-- values are the defaults): one row per person, keyed by their [[users]] `bitbucket` name.
-- A NULL column keeps the file's value.
CREATE TABLE direct_preferences (
    person     TEXT NOT NULL PRIMARY KEY,          -- [[users]] bitbucket, as configured
    dm         TEXT CHECK (dm IN ('on', 'off')),    -- /reviews dm on|off
    remind_at  TEXT,                                -- /reviews remind: "09:30,14:00" (local times)
    away_until TEXT,                                -- /reviews away until: YYYY-MM-DD (their zone)
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

-- PRs a person hears nothing about in direct messages (/reviews mute <PR>).
CREATE TABLE direct_mutes (
    person         TEXT    NOT NULL,
    repository_key TEXT    NOT NULL,
    number         INTEGER NOT NULL,
    created_at     TEXT    NOT NULL,
    PRIMARY KEY (person, repository_key, number)
) WITHOUT ROWID;

-- Direct messages waiting to be sent, and what became of them: the outbox's life (pending,
-- retrying, sending, sent, failed; attempts, backoff, first_failed_at) with a recipient instead
-- of a room. The message is rendered once, when queued, as a chat document (`payload`), and
-- formatted for the recipient's chat when sent.
CREATE TABLE direct_outbox (
    id              INTEGER PRIMARY KEY,
    chat            TEXT NOT NULL CHECK (chat IN ('slack', 'hipchat', 'mattermost', 'teams')),
    person          TEXT NOT NULL,                  -- [[users]] bitbucket
    kind            TEXT NOT NULL CHECK (kind IN ('queue', 'news')),
    repository_key  TEXT,                           -- news: the PR
    number          INTEGER,                        -- news: the PR
    dedupe          TEXT UNIQUE,                    -- queue: person and due instant (sent once)
    payload         TEXT NOT NULL,                  -- the chat document, as JSON
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'retrying', 'sending', 'sent', 'failed')),
    created_at      TEXT NOT NULL,
    not_before      TEXT NOT NULL,                  -- end of the coalescing window, or next retry
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    sent_at         TEXT,
    first_failed_at TEXT,
    message         TEXT                            -- the plain text that was sent
);
CREATE INDEX direct_outbox_queue ON direct_outbox (chat, state, not_before, id);
-- One waiting news message per person per PR: later news joins it (coalescing).
CREATE UNIQUE INDEX direct_outbox_pending_news ON direct_outbox (person, repository_key, number)
    WHERE state = 'pending' AND kind = 'news';

-- Slack users looked up by e-mail (users.lookupByEmail), once: their id and time zone.
CREATE TABLE slack_users (
    email        TEXT NOT NULL PRIMARY KEY,         -- lower-case
    user_id      TEXT NOT NULL,                     -- U0123...
    tz           TEXT,                              -- IANA zone Slack gave, if any
    looked_up_at TEXT NOT NULL
) WITHOUT ROWID;
