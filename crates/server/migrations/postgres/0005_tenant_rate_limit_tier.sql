-- A tenant's abuse-limit tier (PostgreSQL twin of migrations/sqlite/0005): the name of a limit
-- set in RATE_LIMIT_TIERS; NULL: the TENANT_* defaults.
ALTER TABLE tenants ADD COLUMN rate_limit_tier TEXT;
