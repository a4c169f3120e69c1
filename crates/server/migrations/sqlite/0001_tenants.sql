-- Tenants and their API keys. Keys are stored as the SHA-256 of their secret part only;
-- the public key id is what a request is looked up by.
CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_ms    INTEGER NOT NULL,
    key_rotated_ms INTEGER,
    revoked_ms    INTEGER
);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    secret_hash BLOB NOT NULL,
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER
);

CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
