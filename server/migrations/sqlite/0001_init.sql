
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE instances (
    product_id TEXT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    options TEXT NOT NULL,
    PRIMARY KEY (product_id, name)
);
CREATE TABLE disabled_targets (
    product_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    target_key TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (product_id, instance, target_key)
);
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events(id),
    product_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    service TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER,
    lease_owner TEXT,
    lease_until INTEGER,
    done_targets TEXT NOT NULL DEFAULT '[]',
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_updated ON deliveries (updated_at);
CREATE TABLE attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries(id),
    number INTEGER NOT NULL,
    at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    status INTEGER,
    error TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
