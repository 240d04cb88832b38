-- The status page and the metrics tell Bitbucket Cloud and Data Center deliveries apart ("is my
-- webhook arriving?"): each delivery records which Bitbucket sent it, as the headers told.
-- Deliveries recorded before this migration have none (NULL).
ALTER TABLE deliveries ADD COLUMN flavour TEXT CHECK (flavour IN ('cloud', 'datacenter'));
-- The last delivery per flavour, and the refused ones of the last day.
CREATE INDEX deliveries_flavour ON deliveries (flavour, id);
CREATE INDEX deliveries_rejected ON deliveries (received_at) WHERE outcome = 'rejected';
