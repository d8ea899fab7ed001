-- The queue's tables on SQLite, schema version 1. Run as one script inside BEGIN IMMEDIATE, so
-- that two processes opening a new file at once create it once. Times are Unix seconds (REAL).

-- name: create
CREATE TABLE IF NOT EXISTS mailout_queue_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO mailout_queue_meta (name, value) VALUES ('schema_version', '1');

-- One row per message. `recipients` (JSON) is the envelope as enqueued; `pending` those still
-- to be delivered (after a final outcome: those never delivered); `queued_at` starts the lifetime (enqueue, or an operator's retry); `due_at` is when it may next be
-- claimed. The bytes live in mailout_queue_body, so that a claim or an outcome (which rewrite
-- the row) never rewrites the message itself.
CREATE TABLE IF NOT EXISTS mailout_queue_message (
    id INTEGER PRIMARY KEY,
    idempotency_key TEXT,
    state TEXT NOT NULL,
    mailer TEXT NOT NULL,
    priority INTEGER NOT NULL,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,
    pending TEXT NOT NULL,
    domain TEXT NOT NULL,
    message_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    size INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    created_at REAL NOT NULL,
    queued_at REAL NOT NULL,
    due_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    last_reply TEXT,
    reason TEXT
);
-- The exact bytes rendered at enqueue; deleted after sending when keep_body_after_send is off.
CREATE TABLE IF NOT EXISTS mailout_queue_body (
    message INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

-- Idempotency keys are unique; messages without one (most) cost this index nothing.
CREATE UNIQUE INDEX IF NOT EXISTS mailout_queue_message_key
    ON mailout_queue_message (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Claims walk this index per (state, priority) in due order and stop at LIMIT; status reads
-- counts and earliest due times from it without touching the rows.
CREATE INDEX IF NOT EXISTS mailout_queue_message_due
    ON mailout_queue_message (state, priority, due_at);
-- list --state, recent failures and purge --older-than.
CREATE INDEX IF NOT EXISTS mailout_queue_message_updated
    ON mailout_queue_message (state, updated_at);

-- Every attempt per recipient (code, enhanced status, text, the relay's queue id) and every
-- operation (held, released, retried, expired, lease-expired).
CREATE TABLE IF NOT EXISTS mailout_queue_event (
    id INTEGER PRIMARY KEY,
    message INTEGER NOT NULL,
    at REAL NOT NULL,
    attempt INTEGER NOT NULL,
    kind TEXT NOT NULL,
    recipient TEXT,
    code INTEGER,
    enhanced TEXT,
    text TEXT NOT NULL DEFAULT '',
    relay_id TEXT
);
CREATE INDEX IF NOT EXISTS mailout_queue_event_message ON mailout_queue_event (message);

-- Token buckets and daily counts of rate-limited mailers, shared by every worker.
CREATE TABLE IF NOT EXISTS mailout_queue_bucket (
    name TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated_at REAL NOT NULL,
    day TEXT NOT NULL,
    day_count INTEGER NOT NULL
);

-- Live workers, refreshed by each worker's heartbeat.
CREATE TABLE IF NOT EXISTS mailout_queue_worker (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    seen_at REAL NOT NULL,
    in_flight INTEGER NOT NULL,
    sent INTEGER NOT NULL,
    deferred INTEGER NOT NULL,
    failed INTEGER NOT NULL
);
