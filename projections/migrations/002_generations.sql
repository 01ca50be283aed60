-- A projection version can be rebuilt at run time (rebuildProjection): each
-- rebuild is a new generation with its own schema, built beside the serving
-- one and switched to when it has caught up.
ALTER TABLE projections ADD COLUMN generation integer NOT NULL DEFAULT 1 CHECK (generation >= 1);
ALTER TABLE projections DROP CONSTRAINT projections_pkey;
ALTER TABLE projections ADD PRIMARY KEY (name, version, generation);

---- create above / drop below ----

DELETE FROM projections WHERE generation > 1;
ALTER TABLE projections DROP CONSTRAINT projections_pkey;
ALTER TABLE projections ADD PRIMARY KEY (name, version);
ALTER TABLE projections DROP COLUMN generation;
