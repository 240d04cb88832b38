-- Issue 25: living messages. A room that posts through the Slack Web API keeps one message per
-- pull request and edits it as the PR changes (`chat.update`), threading what changed under it.
-- This is where that message is: the channel and `ts` Slack's `chat.postMessage` answered.
--
-- `ts` is NULL while a post is in flight (`posting_since` says since when): a crash between
-- `chat.postMessage` and storing its `ts` leaves the row so, and the next message about the PR
-- first looks the message up by the key it carries in its metadata instead of posting a second
-- one. A database restored without this table's rows simply starts new messages.
CREATE TABLE chat_messages (
    room           TEXT    NOT NULL,            -- the [[rooms]] name
    repository_key TEXT    NOT NULL,            -- repositories.repository_key
    number         INTEGER NOT NULL,            -- the PR's number in that repository
    channel        TEXT    NOT NULL,            -- the channel ID Slack answered (C0123...)
    ts             TEXT,                        -- the message's ts; NULL while being posted
    posting_since  TEXT,                        -- when the post in flight began
    created_at     TEXT    NOT NULL,            -- when the message was posted
    edited_at      TEXT,                        -- when it was last edited
    PRIMARY KEY (room, repository_key, number)
) WITHOUT ROWID;

-- The room's latest digest where the room can edit it (a Slack room through the Web API): when
-- the next one is posted, this one is edited to a line saying it was superseded, so the channel
-- holds one current list.
CREATE TABLE chat_digests (
    room      TEXT    NOT NULL PRIMARY KEY,  -- the [[rooms]] name
    channel   TEXT    NOT NULL,              -- the channel ID Slack answered
    ts        TEXT    NOT NULL,              -- the digest message's ts
    posted_at TEXT    NOT NULL               -- when it was posted
) WITHOUT ROWID;
