-- Issue 28: the review flow in numbers (see migrations/sqlite/20261209000000_review_flow.sql).

CREATE TABLE pull_request_facts (
    repository_key     TEXT COLLATE "C" NOT NULL,
    number             BIGINT  NOT NULL,
    repository_name    TEXT    NOT NULL,
    title              TEXT    NOT NULL,
    url                TEXT,
    author             TEXT COLLATE "C" NOT NULL,
    created_on         TEXT COLLATE "C" NOT NULL,
    ready_on           TEXT COLLATE "C",
    first_review_on    TEXT COLLATE "C",
    approved_on        TEXT COLLATE "C",
    state              TEXT    NOT NULL,
    closed_on          TEXT COLLATE "C",
    approvals          BIGINT  NOT NULL,
    required_approvals BIGINT  NOT NULL,
    rounds             BIGINT  NOT NULL,
    updated_on         TEXT COLLATE "C" NOT NULL,
    source_commit      TEXT COLLATE "C",
    pushed_on          TEXT COLLATE "C",
    blocked            BOOLEAN NOT NULL DEFAULT false,
    turn               TEXT,
    turn_since         TEXT COLLATE "C",
    PRIMARY KEY (repository_key, number)
);
CREATE INDEX pull_request_facts_closed_on ON pull_request_facts (closed_on);
CREATE INDEX pull_request_facts_created_on ON pull_request_facts (created_on);
CREATE INDEX pull_request_facts_open ON pull_request_facts (state) WHERE state = 'OPEN';

CREATE TABLE pull_request_turns (
    repository_key TEXT COLLATE "C" NOT NULL,
    number         BIGINT  NOT NULL,
    turn           TEXT    NOT NULL CHECK (turn IN ('reviewers', 'author', 'merge')),
    since          TEXT COLLATE "C" NOT NULL,
    until          TEXT COLLATE "C",
    PRIMARY KEY (repository_key, number, since)
);

CREATE TABLE pull_request_review_requests (
    repository_key TEXT COLLATE "C" NOT NULL,
    number         BIGINT  NOT NULL,
    reviewer       TEXT COLLATE "C" NOT NULL,
    reviewer_name  TEXT    NOT NULL,
    asked_on       TEXT COLLATE "C" NOT NULL,
    reviewed_on    TEXT COLLATE "C",
    PRIMARY KEY (repository_key, number, reviewer)
);
