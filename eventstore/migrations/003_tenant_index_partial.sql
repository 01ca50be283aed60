-- Only tenants' events are indexed by tenant. Every event of the default
-- tenant '' (a stream without the separator: all of them in a gateway
-- without tenants) cost a btree entry that no read needed, on every
-- append; a read of the default tenant's events walks the log in position
-- order and skips tenants' events, which is what the index gave for ''
-- anyway when most of the log is the default tenant's. ReadAll filters
-- with the index's predicate and expression.
DROP INDEX events_tenant_position;
CREATE INDEX events_tenant_position ON events (split_part(stream_id, '~', 1), position)
    WHERE strpos(stream_id, '~') > 0;

---- create above / drop below ----

DROP INDEX events_tenant_position;
CREATE INDEX events_tenant_position ON events
    ((CASE WHEN strpos(stream_id, '~') > 0 THEN split_part(stream_id, '~', 1) ELSE '' END), position);
