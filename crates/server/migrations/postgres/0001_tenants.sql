-- Tenants and their API keys (PostgreSQL twin of migrations/sqlite/0001_tenants.sql: same
-- tables, columns and constraints). Keys are stored as the SHA-256 of their secret part only;
-- the public key id is what a request is looked up by. Ids use the "C" collation so that
-- ordering by a UUIDv7 string is byte order, as in SQLite.
CREATE TABLE tenants (
    id             TEXT COLLATE "C" PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_ms     BIGINT NOT NULL,
    key_rotated_ms BIGINT,
    revoked_ms     BIGINT
);

CREATE TABLE api_keys (
    key_id      TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    secret_hash BYTEA NOT NULL,
    created_ms  BIGINT NOT NULL,
    revoked_ms  BIGINT
);

CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
