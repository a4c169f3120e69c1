-- Security events and per-tenant gate thresholds (PostgreSQL twin of
-- migrations/sqlite/0002_security_events.sql). The raw prompt is stored only when
-- EVENT_STORE_PROMPT=true; otherwise its hash and length.
CREATE TABLE security_events (
    id            TEXT COLLATE "C" PRIMARY KEY,  -- UUIDv7: unique and time-sortable
    created_ms    BIGINT NOT NULL,
    tenant_id     TEXT COLLATE "C" NOT NULL REFERENCES tenants(id),
    request_id    TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    score         BIGINT NOT NULL,
    reasons       TEXT NOT NULL,                 -- JSON array of factor names
    decision      TEXT NOT NULL CHECK (decision IN ('allow', 'warn', 'block')),
    enforced      BIGINT NOT NULL,               -- 0 in monitor mode: recorded, not acted on
    prompt_sha256 TEXT NOT NULL,
    prompt_chars  BIGINT NOT NULL,
    prompt        TEXT,
    detail        TEXT                           -- JSON: pattern ids and points, detector specifics
);

CREATE INDEX security_events_tenant_time ON security_events(tenant_id, id);

ALTER TABLE tenants ADD COLUMN risk_threshold_warn BIGINT;
ALTER TABLE tenants ADD COLUMN risk_threshold_block BIGINT;
