-- Messages shaped for people (server/src/shaping.rs, docs/SHAPING.md): the columns of
-- PostgreSQL's 0011_shaping_windows.sql, which says what each is for (SQLite checks no
-- statuses). The step after the fallback routes' one (0010) where both are merged.
ALTER TABLE deliveries ADD COLUMN shape_key TEXT;
ALTER TABLE deliveries ADD COLUMN window_since INTEGER;
ALTER TABLE deliveries ADD COLUMN replaced_by TEXT;
ALTER TABLE deliveries ADD COLUMN digest_events INTEGER;
CREATE INDEX deliveries_shaped ON deliveries (shape_key)
    WHERE shape_key IS NOT NULL AND status = 'pending';
CREATE INDEX deliveries_replaced ON deliveries (replaced_by)
    WHERE replaced_by IS NOT NULL;
