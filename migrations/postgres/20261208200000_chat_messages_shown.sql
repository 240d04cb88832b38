-- Issue 25: what a living message showed when it was last posted or edited, so that the reply
-- threaded under the next edit says what changed ("Bob approved", "Build failed", "New
-- commits"): a JSON object written and read by src/notify/dispatcher/living.rs (`Shown`), NULL
-- for messages stored before this migration (their next reply names the news' headline).
ALTER TABLE chat_messages ADD COLUMN shown TEXT COLLATE "C";
