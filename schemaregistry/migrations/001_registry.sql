-- The event schema registry. Schemas and migrations are kept as the admin
-- sent them (json, not jsonb: key order is kept for display).
CREATE TABLE schema_types (
    event_type    text        PRIMARY KEY CHECK (event_type <> ''),
    compatibility text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE schema_versions (
    event_type  text        NOT NULL REFERENCES schema_types,
    version     integer     NOT NULL CHECK (version >= 1),
    schema      json        NOT NULL,
    fingerprint text        NOT NULL,
    deprecated  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_type, version)
);

-- The declarative migration from from_version to from_version + 1.
CREATE TABLE schema_migrations (
    event_type   text        NOT NULL REFERENCES schema_types,
    from_version integer     NOT NULL CHECK (from_version >= 1),
    operations   json        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_type, from_version)
);

-- Bumped by every change, so processes know when to reload.
CREATE TABLE schema_registry_revision (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    revision bigint  NOT NULL
);
INSERT INTO schema_registry_revision (revision) VALUES (0);

---- create above / drop below ----

DROP TABLE schema_registry_revision;
DROP TABLE schema_migrations;
DROP TABLE schema_versions;
DROP TABLE schema_types;
