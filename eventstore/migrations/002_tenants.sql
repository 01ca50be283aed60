-- Reading one tenant's share of the log in position order. A tenant's
-- streams are named "<tenant>~<stream>"; streams without the separator
-- belong to the default tenant ''. ReadAll filters with the same expression.
CREATE INDEX events_tenant_position ON events
    ((CASE WHEN strpos(stream_id, '~') > 0 THEN split_part(stream_id, '~', 1) ELSE '' END), position);

---- create above / drop below ----

DROP INDEX events_tenant_position;
