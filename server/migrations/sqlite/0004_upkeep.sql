
-- Failures in a row of each target; a success deletes the row.
CREATE TABLE target_health (
    product_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    target_key TEXT NOT NULL,
    target TEXT NOT NULL,
    failures INTEGER NOT NULL,
    first_failure_at INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    PRIMARY KEY (product_id, instance, target_key)
);
-- The instance of the product that is told when a target is disabled or a delivery dies.
ALTER TABLE products ADD COLUMN alerts TEXT;
-- When each target was last alerted about (at most one alert per target per hour).
CREATE TABLE alerts_sent (
    product_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    target_key TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    PRIMARY KEY (product_id, instance, target_key)
);
-- Pruning walks events by age and finds their deliveries.
CREATE INDEX events_received ON events (received_at);
CREATE INDEX deliveries_event ON deliveries (event_id);
