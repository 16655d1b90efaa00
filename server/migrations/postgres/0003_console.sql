-- The console (server/src/console): a product's deliveries newest first, page by page,
-- and its attempts by time for the overview's charts.
CREATE INDEX deliveries_product_updated ON deliveries (product_id, updated_at, id);
CREATE INDEX attempts_at ON attempts (at);
