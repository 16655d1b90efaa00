
-- API tokens: the SHA-256 of each, never the token (server/src/tokens.rs).
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    products TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
-- One row `/healthz` writes, to know that a commit still goes through.
CREATE TABLE health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
