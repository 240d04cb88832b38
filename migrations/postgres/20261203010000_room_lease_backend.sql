-- A room's lease also names the database session of its holder (`pg_backend_pid()` of the
-- replica's lease connection): when that session is gone (the replica was killed, its host went
-- down), PostgreSQL has closed it and another replica takes the room over at once instead of
-- waiting for `expires_at`.
ALTER TABLE room_leases ADD COLUMN backend_pid INTEGER;
