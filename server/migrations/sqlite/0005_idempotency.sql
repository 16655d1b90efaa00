
-- Idempotency keys of accepted events, with the answer the first POST got.
CREATE TABLE idempotency_keys (
    product_id TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    event_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (product_id, key)
);
