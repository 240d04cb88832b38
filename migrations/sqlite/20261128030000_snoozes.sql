-- `/reviews snooze`: a person hides a PR from their `/reviews` and from the room's sweep until
-- `until`, or until the PR changes: a new commit, a new requested reviewer, or an approval that
-- was there when snoozed is withdrawn (the webhook writer deletes such snoozes as it applies the
-- change).
CREATE TABLE snoozes (
    user_key      TEXT    NOT NULL,                  -- who snoozed (users.user_key)
    repository    TEXT    NOT NULL,
    number        INTEGER NOT NULL,
    until         TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    source_commit TEXT,                              -- the PR's commit when snoozed
    reviewers     TEXT    NOT NULL DEFAULT '[]',     -- JSON array of requested reviewers then
    approvers     TEXT    NOT NULL DEFAULT '[]',     -- JSON array of who had approved then
    PRIMARY KEY (user_key, repository, number)
) WITHOUT ROWID;
CREATE INDEX snoozes_pull_request ON snoozes (repository, number);
