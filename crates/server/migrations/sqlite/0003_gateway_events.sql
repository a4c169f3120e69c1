-- Gateway-wide security events (a model failing its integrity check) belong to no tenant:
-- tenant_id becomes nullable. SQLite cannot relax NOT NULL in place, so the table is rebuilt
-- with the same columns in the same order.
CREATE TABLE security_events_new (
    id            TEXT PRIMARY KEY,
    created_ms    INTEGER NOT NULL,
    tenant_id     TEXT REFERENCES tenants(id), -- NULL: a gateway-wide event, visible to the admin only
    request_id    TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    score         INTEGER NOT NULL,
    reasons       TEXT NOT NULL,
    decision      TEXT NOT NULL CHECK (decision IN ('allow', 'warn', 'block')),
    enforced      INTEGER NOT NULL,
    prompt_sha256 TEXT NOT NULL,
    prompt_chars  INTEGER NOT NULL,
    prompt        TEXT,
    detail        TEXT
);

INSERT INTO security_events_new
    (id, created_ms, tenant_id, request_id, event_type, score, reasons, decision, enforced,
     prompt_sha256, prompt_chars, prompt, detail)
SELECT id, created_ms, tenant_id, request_id, event_type, score, reasons, decision, enforced,
       prompt_sha256, prompt_chars, prompt, detail
FROM security_events;

DROP TABLE security_events;
ALTER TABLE security_events_new RENAME TO security_events;
CREATE INDEX security_events_tenant_time ON security_events(tenant_id, id);
