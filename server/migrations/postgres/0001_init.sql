-- Lookout's PostgreSQL schema, step 1: the same outbox as the SQLite store.
-- Applied once by `lookout serve` / `lookout worker` at start and recorded in
-- schema_migrations. A shipped step never changes: add a new file instead.
-- Times are milliseconds since the Unix epoch (BIGINT), like the SQLite store.

CREATE TABLE products (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE instances (
    product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    -- The raw options table as JSON text (key order kept), secrets included.
    options TEXT NOT NULL,
    PRIMARY KEY (product_id, name)
);

CREATE TABLE disabled_targets (
    product_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    target_key TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (product_id, instance, target_key)
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    product_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    service TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('pending', 'failed', 'delivered', 'skipped', 'disabled', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    -- How often a worker took this delivery over because another one's lease ran out
    -- (a worker died or stalled): each time, a request may have been sent twice.
    lease_expiries INTEGER NOT NULL DEFAULT 0,
    done_targets TEXT NOT NULL DEFAULT '[]',
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The claim query walks this in order of due time.
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_updated ON deliveries (updated_at);
-- `release` at a worker's shutdown.
CREATE INDEX deliveries_leased ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE attempts (
    -- Insertion order: the order attempts are shown in.
    seq BIGSERIAL PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES deliveries (id),
    number INTEGER NOT NULL,
    at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    status INTEGER,
    error TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
