-- Per-tenant output-guard overrides (JSON object with the fields of TenantOutputOverrides).
-- A separate table keeps the tenant row and the key lookup unchanged.
-- (Twin of migrations/sqlite/0006_tenant_output_policy.sql.)
CREATE TABLE tenant_output_policy (
    tenant_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES tenants(id),
    overrides  TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
