
-- How many times the products' services changed (store/mod.rs, `Generation`): the intake
-- routes with a cached copy of a product and stores an event only if this has not moved.
CREATE TABLE config_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO config_generation (id, generation) VALUES (1, 0);
CREATE TRIGGER products_inserted AFTER INSERT ON products
BEGIN UPDATE config_generation SET generation = generation + 1; END;
CREATE TRIGGER products_updated AFTER UPDATE ON products
BEGIN UPDATE config_generation SET generation = generation + 1; END;
CREATE TRIGGER products_deleted AFTER DELETE ON products
BEGIN UPDATE config_generation SET generation = generation + 1; END;
CREATE TRIGGER instances_inserted AFTER INSERT ON instances
BEGIN UPDATE config_generation SET generation = generation + 1; END;
CREATE TRIGGER instances_updated AFTER UPDATE ON instances
BEGIN UPDATE config_generation SET generation = generation + 1; END;
CREATE TRIGGER instances_deleted AFTER DELETE ON instances
BEGIN UPDATE config_generation SET generation = generation + 1; END;
