-- Security events (WARN/BLOCK verdicts and later detectors) and per-tenant gate thresholds.
-- The raw prompt is stored only when EVENT_STORE_PROMPT=true; otherwise its hash and length.
CREATE TABLE security_events (
    id            TEXT PRIMARY KEY,          -- UUIDv7: unique and time-sortable
    created_ms    INTEGER NOT NULL,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    request_id    TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    score         INTEGER NOT NULL,
    reasons       TEXT NOT NULL,             -- JSON array of factor names
    decision      TEXT NOT NULL CHECK (decision IN ('allow', 'warn', 'block')),
    enforced      INTEGER NOT NULL,          -- 0 in monitor mode: the verdict was recorded, not acted on
    prompt_sha256 TEXT NOT NULL,
    prompt_chars  INTEGER NOT NULL,
    prompt        TEXT,
    detail        TEXT                       -- JSON: pattern ids and points, detector specifics
);

CREATE INDEX security_events_tenant_time ON security_events(tenant_id, id);

ALTER TABLE tenants ADD COLUMN risk_threshold_warn INTEGER;
ALTER TABLE tenants ADD COLUMN risk_threshold_block INTEGER;
