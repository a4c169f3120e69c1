-- The audit trail: one row per request outcome and per admin action. No key and no raw
-- prompt is ever stored here: prompts appear only as their SHA-256 and length.
CREATE TABLE audit_log (
    id                TEXT PRIMARY KEY,      -- UUIDv7: unique and time-sortable
    created_ms        INTEGER NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('request', 'admin')),
    request_id        TEXT,
    actor             TEXT NOT NULL,         -- tenant id, 'admin', 'cli:<user>' or 'anonymous'
    tenant_id         TEXT,                  -- the caller (request) or the target (admin action)
    action            TEXT NOT NULL,         -- 'POST /v1/chat/completions', 'tenant_created', ...
    status            INTEGER,
    decision          TEXT,
    score             INTEGER,
    reasons           TEXT NOT NULL DEFAULT '[]',  -- JSON array
    latency_ms        REAL,
    model             TEXT,
    prompt_sha256     TEXT,
    prompt_chars      INTEGER,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    detail            TEXT                   -- JSON
);

CREATE INDEX audit_log_created ON audit_log(created_ms);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, id);
