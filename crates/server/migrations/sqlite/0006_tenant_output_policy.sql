-- Per-tenant output-guard overrides (JSON object with the fields of TenantOutputOverrides).
-- A separate table keeps the tenant row and the key lookup unchanged.
-- (Twin of migrations/postgres/0006_tenant_output_policy.sql.)
CREATE TABLE tenant_output_policy (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants(id),
    overrides  TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
