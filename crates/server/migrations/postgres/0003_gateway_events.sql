-- Gateway-wide security events (a model failing its integrity check) belong to no tenant:
-- tenant_id becomes nullable (twin of migrations/sqlite/0003_gateway_events.sql, which has to
-- rebuild the table; PostgreSQL relaxes the constraint in place).
ALTER TABLE security_events ALTER COLUMN tenant_id DROP NOT NULL;
