-- A tenant's abuse-limit tier: the name of a limit set in RATE_LIMIT_TIERS. NULL: the
-- TENANT_* defaults. Names are validated against the configuration when they are set.
ALTER TABLE tenants ADD COLUMN rate_limit_tier TEXT;
