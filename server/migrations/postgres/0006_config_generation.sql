-- How many times the products' services changed (store/mod.rs, `Generation`): the intake
-- routes with a cached copy of a product and stores an event only if this has not moved.
CREATE TABLE config_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO config_generation (id, generation) VALUES (1, 0);
CREATE FUNCTION lookout_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE config_generation SET generation = generation + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER products_changed AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION lookout_config_changed();
CREATE TRIGGER instances_changed AFTER INSERT OR UPDATE OR DELETE ON instances
    FOR EACH STATEMENT EXECUTE FUNCTION lookout_config_changed();
