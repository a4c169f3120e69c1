-- The audit trail (PostgreSQL twin of migrations/sqlite/0005_audit_log.sql): one row per
-- request outcome and per admin action. No key and no raw prompt is ever stored here.
CREATE TABLE audit_log (
    id                TEXT COLLATE "C" PRIMARY KEY,  -- UUIDv7: unique and time-sortable
    created_ms        BIGINT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('request', 'admin')),
    request_id        TEXT,
    actor             TEXT NOT NULL,                 -- tenant id, 'admin', 'cli:<user>' or 'anonymous'
    tenant_id         TEXT COLLATE "C",              -- the caller (request) or the target (admin action)
    action            TEXT NOT NULL,                 -- 'POST /v1/chat/completions', 'tenant_created', ...
    status            BIGINT,
    decision          TEXT,
    score             BIGINT,
    reasons           TEXT NOT NULL DEFAULT '[]',    -- JSON array
    latency_ms        DOUBLE PRECISION,
    model             TEXT,
    prompt_sha256     TEXT,
    prompt_chars      BIGINT,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    detail            TEXT                           -- JSON
);

CREATE INDEX audit_log_created ON audit_log(created_ms);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, id);
