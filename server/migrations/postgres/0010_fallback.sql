-- Fallback routes (docs/SHAPING.md): a delivery made because another went dead or its
-- target was disabled names that one (`fallback_for`), which names it back
-- (`fell_back_to`). Unique: a delivery falls back at most once, whichever worker records
-- its dead letter, however often it is redelivered.
ALTER TABLE deliveries ADD COLUMN fallback_for TEXT;
ALTER TABLE deliveries ADD COLUMN fell_back_to TEXT;
CREATE UNIQUE INDEX deliveries_fallback_for ON deliveries (fallback_for)
    WHERE fallback_for IS NOT NULL;
