-- Idempotency keys of accepted events, with the answer the first POST got
-- (docs/SERVING.md, "Idempotent intake"). A key is per product.
CREATE TABLE idempotency_keys (
    product_id TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    event_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (product_id, key)
);
