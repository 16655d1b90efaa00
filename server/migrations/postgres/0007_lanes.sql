-- Lanes (server/src/lanes.rs, docs/SERVING.md "Fairness and lanes"), and a generation
-- per product instead of one for all.

-- A product's deliveries to one destination. `due_at`: nothing in the lane can be
-- claimed before it (NULL: nothing queued); `served_at`: when a claim last took from it
-- (the longest unserved goes first); `latency_ms`: its answers' time, smoothed.
CREATE TABLE lanes (
    key TEXT PRIMARY KEY,
    product_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    every_ms BIGINT NOT NULL DEFAULT 0,
    burst INTEGER NOT NULL DEFAULT 1,
    cap INTEGER NOT NULL,
    due_at BIGINT,
    served_at BIGINT NOT NULL DEFAULT 0,
    latency_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX lanes_due ON lanes (due_at) WHERE due_at IS NOT NULL;

-- A destination's schedule, shared by every product's lane to it and by every worker
-- process: the pace's theoretical arrival time, changed in the claim's transaction.
CREATE TABLE paces (
    destination TEXT PRIMARY KEY,
    tat BIGINT NOT NULL DEFAULT 0
);

-- A delivery's lane; its order key (`order_by`) and its place in the intake order; how
-- often its destination asked it to wait. A queued delivery whose next_at is NULL is
-- held behind an earlier one of its order key.
ALTER TABLE deliveries ADD COLUMN lane TEXT;
ALTER TABLE deliveries ADD COLUMN order_key TEXT;
ALTER TABLE deliveries ADD COLUMN throttles INTEGER NOT NULL DEFAULT 0;
CREATE SEQUENCE deliveries_seq;
ALTER TABLE deliveries ADD COLUMN seq BIGINT;
ALTER TABLE deliveries ALTER COLUMN seq SET DEFAULT nextval('deliveries_seq');
UPDATE deliveries SET lane = 'instance:' || product_id || '/' || instance
WHERE status IN ('pending', 'failed');
INSERT INTO lanes (key, product_id, destination, cap, due_at)
    SELECT DISTINCT lane, product_id, lane, 8, 0 FROM deliveries WHERE lane IS NOT NULL;
INSERT INTO paces (destination) SELECT destination FROM lanes;

DROP INDEX deliveries_due;
CREATE INDEX deliveries_lane_due ON deliveries (lane, next_at)
    WHERE status IN ('pending', 'failed');
DROP INDEX deliveries_leased;
CREATE INDEX deliveries_leased ON deliveries (lane, lease_until, lease_owner)
    WHERE lease_owner IS NOT NULL;
CREATE INDEX deliveries_ordered ON deliveries (order_key, seq)
    WHERE order_key IS NOT NULL AND status IN ('pending', 'failed');

-- Each product's own generation (routing.rs): another product's changes never make an
-- event be routed again. Values come from one sequence, so a product removed and made
-- again never repeats one; changes to a product take its row's lock, and an intake's
-- accept holds it shared.
DROP TRIGGER products_changed ON products;
DROP TRIGGER instances_changed ON instances;
DROP FUNCTION lookout_config_changed();
CREATE SEQUENCE products_generation;
ALTER TABLE products ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
SELECT setval('products_generation', (SELECT generation + 1 FROM config_generation));
UPDATE products SET generation = (SELECT generation FROM config_generation);
DROP TABLE config_generation;
