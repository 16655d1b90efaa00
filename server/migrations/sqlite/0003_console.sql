
-- The console (server/src/console): a product's deliveries newest first, page by page,
-- and by status; its attempts by time for the overview's charts (covering: the charts
-- read only these columns).
CREATE INDEX deliveries_product_updated ON deliveries (product_id, updated_at, id);
CREATE INDEX deliveries_product_status ON deliveries (product_id, status);
CREATE INDEX deliveries_id_product ON deliveries (id, product_id);
CREATE INDEX attempts_at ON attempts (at, delivery_id, outcome, duration_ms);
