-- Issue 28: the review flow in numbers. The dated facts of every pull request, kept in compact
-- tables of their own so that they outlive the PR's rows when those are pruned (no foreign key
-- to pull_requests). Written by the writer in the transaction that applies each PR snapshot,
-- from Bitbucket's own dates only; read by `store::analytics::read`. Definitions:
-- `domain::analytics::{PrFacts, TurnSpan, ReviewRequest}`.

-- One row per PR.
CREATE TABLE pull_request_facts (
    repository_key     TEXT    NOT NULL,
    number             INTEGER NOT NULL,
    repository_name    TEXT    NOT NULL,             -- the full name as last seen
    title              TEXT    NOT NULL,
    url                TEXT,
    author             TEXT    NOT NULL,             -- user key
    created_on         TEXT    NOT NULL,
    ready_on           TEXT,                         -- NULL while a PR opened as a draft is one
    first_review_on    TEXT,
    approved_on        TEXT,
    state              TEXT    NOT NULL,             -- OPEN, MERGED, DECLINED, SUPERSEDED, DELETED
    closed_on          TEXT,
    approvals          INTEGER NOT NULL,
    required_approvals INTEGER NOT NULL,
    rounds             INTEGER NOT NULL,
    -- The writer's bookkeeping (not figures): the newest snapshot folded in, its source commit,
    -- when that commit first showed, whether a request for changes stood, and the open turn.
    updated_on         TEXT    NOT NULL,
    source_commit      TEXT,
    pushed_on          TEXT,
    blocked            INTEGER NOT NULL DEFAULT 0,
    turn               TEXT,                         -- the open span's turn (NULL once closed)
    turn_since         TEXT,                         -- the open span's since
    PRIMARY KEY (repository_key, number)
) WITHOUT ROWID;
CREATE INDEX pull_request_facts_closed_on ON pull_request_facts (closed_on);
CREATE INDEX pull_request_facts_created_on ON pull_request_facts (created_on);
CREATE INDEX pull_request_facts_open ON pull_request_facts (state) WHERE state = 'OPEN';

-- Who had the turn, when: one row per stretch (`until` NULL while it lasts).
CREATE TABLE pull_request_turns (
    repository_key TEXT    NOT NULL,
    number         INTEGER NOT NULL,
    turn           TEXT    NOT NULL CHECK (turn IN ('reviewers', 'author', 'merge')),
    since          TEXT    NOT NULL,
    until          TEXT,
    PRIMARY KEY (repository_key, number, since)
) WITHOUT ROWID;

-- Reviewers asked, when, and when they first gave a verdict.
CREATE TABLE pull_request_review_requests (
    repository_key TEXT    NOT NULL,
    number         INTEGER NOT NULL,
    reviewer       TEXT    NOT NULL,                 -- user key
    reviewer_name  TEXT    NOT NULL,
    asked_on       TEXT    NOT NULL,
    reviewed_on    TEXT,
    PRIMARY KEY (repository_key, number, reviewer)
) WITHOUT ROWID;
