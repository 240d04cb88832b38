-- When a message's first attempt failed: a room back from an outage is probed every few seconds
-- while its backlog waits, and a message gives up only once both `max_attempts` tries and the
-- whole backoff schedule since this instant have passed (probing faster must not give up sooner).
ALTER TABLE outbox ADD COLUMN first_failed_at TEXT;
