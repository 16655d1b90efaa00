-- Console sessions (server/src/console/auth.rs): the SHA-256 of each cookie's secret,
-- never the secret, so a copy of the database opens nothing. `product` is NULL for an
-- admin session; `link_id` is the portal link that opened it, ended with that link.
CREATE TABLE console_sessions (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    product TEXT,
    link_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_link ON console_sessions (link_id);

-- Portal links (`lookout portal-link`): what each opens and until when, so that one can
-- be listed and revoked. The link's signature is never stored.
CREATE TABLE portal_links (
    id TEXT PRIMARY KEY,
    product TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
