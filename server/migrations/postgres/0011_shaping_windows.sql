-- Messages shaped for people (server/src/shaping.rs, docs/SHAPING.md). SQLite's step
-- after the fallback routes' one adds the same columns (SQLite checks no statuses).
--
-- Two new statuses: `superseded` (coalesced into a newer delivery) and `digested` (sent
-- in a digest).
-- shape_key: a coalesced delivery's key (same service, model and value), or a digest's
--   (its service): a new delivery looks for queued ones of its key in the intake's
--   transaction.
-- window_since: for a coalesced delivery, when the stream of updates it replaced began
--   (`max_wait` counts from then).
-- replaced_by: a `superseded` delivery's replacement, a `digested` one's digest.
-- digest_events: set on a digest's own delivery: how many events it gathers.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check CHECK (status IN
    ('pending', 'failed', 'delivered', 'skipped', 'disabled', 'dead', 'superseded', 'digested'));
ALTER TABLE deliveries ADD COLUMN shape_key TEXT;
ALTER TABLE deliveries ADD COLUMN window_since BIGINT;
ALTER TABLE deliveries ADD COLUMN replaced_by TEXT;
ALTER TABLE deliveries ADD COLUMN digest_events INTEGER;
CREATE INDEX deliveries_shaped ON deliveries (shape_key)
    WHERE shape_key IS NOT NULL AND status = 'pending';
CREATE INDEX deliveries_replaced ON deliveries (replaced_by)
    WHERE replaced_by IS NOT NULL;
