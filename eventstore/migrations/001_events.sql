-- The append-only event log. See the package documentation for why
-- positions are allocated under a lock and why tx_id is stored.
CREATE TABLE events (
    -- Global position: allocated from the identity sequence (CACHE 1, so
    -- values are handed out in call order) while the append holds the
    -- allocation lock, hence strictly increasing in commit order.
    position       bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    -- The appending transaction, assigned inside the same lock.
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id       uuid        NOT NULL,
    stream_id      text        NOT NULL CHECK (stream_id <> ''),
    stream_version bigint      NOT NULL CHECK (stream_version >= 1),
    event_type     text        NOT NULL CHECK (event_type <> ''),
    schema_version integer     NOT NULL CHECK (schema_version >= 1),
    data           jsonb       NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    metadata       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

-- Reading the log filtered by type.
CREATE INDEX events_type_position ON events (event_type, position);

-- Reading everything one request or process caused.
CREATE INDEX events_correlation ON events ((metadata ->> 'correlationId'), position)
    WHERE metadata ? 'correlationId';

-- The latest snapshot of a stream's aggregate.
CREATE TABLE snapshots (
    stream_id      text        PRIMARY KEY,
    stream_version bigint      NOT NULL CHECK (stream_version >= 1),
    schema_version integer     NOT NULL CHECK (schema_version >= 1),
    state          jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

---- create above / drop below ----

DROP TABLE snapshots;
DROP TABLE events;
