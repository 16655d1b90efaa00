
-- A product's deliveries to one destination. `due_at`: nothing in the lane can be
-- claimed before it (NULL: nothing queued); `served_at`: when a claim last took from it
-- (the longest unserved goes first); `latency_ms`: its answers' time, smoothed.
CREATE TABLE lanes (
    key TEXT PRIMARY KEY,
    product_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    every_ms INTEGER NOT NULL DEFAULT 0,
    burst INTEGER NOT NULL DEFAULT 1,
    cap INTEGER NOT NULL,
    due_at INTEGER,
    served_at INTEGER NOT NULL DEFAULT 0,
    latency_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX lanes_due ON lanes (due_at) WHERE due_at IS NOT NULL;
-- A destination's schedule, shared by every product's lane to it: the pace's
-- theoretical arrival time.
CREATE TABLE paces (
    destination TEXT PRIMARY KEY,
    tat INTEGER NOT NULL DEFAULT 0
);
-- A delivery's lane; its order key (`order_by`); how often its destination asked it
-- to wait. A queued delivery whose next_at is NULL is held behind an earlier one of
-- its order key.
ALTER TABLE deliveries ADD COLUMN lane TEXT;
ALTER TABLE deliveries ADD COLUMN order_key TEXT;
ALTER TABLE deliveries ADD COLUMN throttles INTEGER NOT NULL DEFAULT 0;
UPDATE deliveries SET lane = 'instance:' || product_id || '/' || instance
WHERE status IN ('pending', 'failed');
INSERT INTO lanes (key, product_id, destination, cap, due_at)
    SELECT DISTINCT lane, product_id, lane, 8, 0 FROM deliveries WHERE lane IS NOT NULL;
INSERT INTO paces (destination) SELECT destination FROM lanes;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_lane_due ON deliveries (lane, next_at) WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_leased ON deliveries (lane, lease_until, lease_owner)
    WHERE lease_owner IS NOT NULL;
CREATE INDEX deliveries_ordered ON deliveries (order_key)
    WHERE order_key IS NOT NULL AND status IN ('pending', 'failed');
-- Each product's own generation (routing.rs): another product's changes never make an
-- event be routed again. The counter above now only hands out new values.
ALTER TABLE products ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
UPDATE products SET generation = (SELECT generation FROM config_generation WHERE id = 1);
DROP TRIGGER products_inserted;
DROP TRIGGER products_updated;
DROP TRIGGER products_deleted;
DROP TRIGGER instances_inserted;
DROP TRIGGER instances_updated;
DROP TRIGGER instances_deleted;
