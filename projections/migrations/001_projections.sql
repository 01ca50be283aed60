-- One row per projection version: its checkpoint and health. Read-model
-- tables live in a schema per version (rm_<name>_v<version>); queries read
-- the views in schema readmodel, which point at the serving version.
CREATE SCHEMA IF NOT EXISTS readmodel;

CREATE TABLE projections (
    name            text        NOT NULL,
    version         integer     NOT NULL CHECK (version >= 1),
    position        bigint      NOT NULL DEFAULT 0,
    status          text        NOT NULL DEFAULT 'RUNNING' CHECK (status IN ('RUNNING', 'FAILED', 'RETIRED')),
    serving         boolean     NOT NULL DEFAULT false,
    failures        integer     NOT NULL DEFAULT 0,
    last_error      text,
    failed_position bigint,
    failed_event_id uuid,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (name, version)
);

-- At most one serving version per projection.
CREATE UNIQUE INDEX projections_one_serving ON projections (name) WHERE serving;

---- create above / drop below ----

DROP TABLE projections;
DROP SCHEMA readmodel CASCADE;
