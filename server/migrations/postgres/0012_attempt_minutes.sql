-- The console's overview counts a product's attempts per minute and outcome over the
-- last day (Store::activity). Joining every attempt of the day to its delivery for its
-- product cost more than the rest of the page; now each attempt carries its delivery's
-- product and the minute it began (its start in ms, `at` rounded down), written with the
-- attempt and never updated, so workers share no row, and one covering index answers the
-- counts in order and the recent durations. It replaces `attempts_at`, which only the
-- overview read. The same text serves SQLite and PostgreSQL (BIGINT is an integer to
-- both); attempts already stored are filled in here.
ALTER TABLE attempts ADD COLUMN product_id TEXT;
ALTER TABLE attempts ADD COLUMN minute BIGINT;
UPDATE attempts SET
    product_id = (SELECT d.product_id FROM deliveries d WHERE d.id = attempts.delivery_id),
    minute = at - at % 60000;
CREATE INDEX attempts_product_minute ON attempts (product_id, minute, outcome, at, duration_ms);
DROP INDEX attempts_at;
