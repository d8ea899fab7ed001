-- The queue's queries on SQLite. Lists of ids, states or names are bound as one JSON array
-- and read with json_each(), so no query text is ever built from values. An UPDATE of listed
-- ids says NOT INDEXED: it must look each id up by rowid, never walk an index on `state`
-- (which SQLite's planner would otherwise pick, and which holds 10^6 entries in a big queue).

-- name: schema_version
SELECT value FROM mailout_queue_meta WHERE name = 'schema_version';

-- name: has_schema
SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'mailout_queue_meta';

-- name: insert_message
INSERT INTO mailout_queue_message (
    idempotency_key, state, mailer, priority, sender, recipients, pending, domain, message_id,
    subject, size, metadata, created_at, queued_at, due_at, updated_at
) VALUES (
    :key, 'queued', :mailer, :priority, :sender, :recipients, :recipients, :domain, :message_id,
    :subject, :size, :metadata, :now, :now, :due_at, :now
)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

-- name: insert_body
INSERT INTO mailout_queue_body (message, data) VALUES (?, ?);

-- The largest id: a run of messages inserted together gets the ids after it (see enqueue).
-- name: max_id
SELECT max(id) FROM mailout_queue_message;

-- name: id_for_key
SELECT id FROM mailout_queue_message WHERE idempotency_key = :key AND idempotency_key IS NOT NULL;

-- Due messages of one state and priority, oldest due first; the worker's exclusions (mailers
-- out of tokens, domains at their cap) are skipped here rather than claimed and given back.
-- name: candidates
SELECT id, mailer FROM mailout_queue_message
WHERE state = :state AND priority = :priority AND due_at <= :now
  AND mailer NOT IN (SELECT value FROM json_each(:skip_mailers))
  AND domain NOT IN (SELECT value FROM json_each(:skip_domains))
ORDER BY due_at, id
LIMIT :limit;

-- The same when the worker leaves some out: only the first `window` due messages are looked at
-- for the others' mail, not every queued row while one big domain is at its cap.
-- name: candidates_excluding
SELECT id, mailer FROM (
    SELECT id, mailer, domain, due_at FROM mailout_queue_message
    WHERE state = :state AND priority = :priority AND due_at <= :now
    ORDER BY due_at, id
    LIMIT :window
)
WHERE mailer NOT IN (SELECT value FROM json_each(:skip_mailers))
  AND domain NOT IN (SELECT value FROM json_each(:skip_domains))
ORDER BY due_at, id
LIMIT :limit;

-- name: claim
UPDATE mailout_queue_message NOT INDEXED
SET state = 'sending', lease_owner = :worker, lease_until = :until,
    attempts = attempts + 1, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND state IN ('queued', 'deferred')
RETURNING id, attempts, mailer, priority, sender, pending, message_id, created_at,
    queued_at, delivered, metadata;

-- name: bodies
SELECT message, data FROM mailout_queue_body WHERE message IN (SELECT value FROM json_each(:ids));

-- name: buckets
SELECT name, tokens, updated_at, day, day_count FROM mailout_queue_bucket;

-- name: save_bucket
INSERT INTO mailout_queue_bucket (name, tokens, updated_at, day, day_count)
VALUES (:name, :tokens, :updated_at, :day, :day_count)
ON CONFLICT (name) DO UPDATE SET
    tokens = excluded.tokens, updated_at = excluded.updated_at,
    day = excluded.day, day_count = excluded.day_count;

-- name: bucket
SELECT name, tokens, updated_at, day, day_count FROM mailout_queue_bucket WHERE name = :name;

-- Only the worker that holds the lease, for the attempt it claimed, may record an outcome:
-- a worker whose lease expired and was taken over changes nothing.
-- name: record
UPDATE mailout_queue_message
SET state = :state, pending = :pending, due_at = coalesce(:due_at, due_at),
    delivered = delivered + :delivered, last_reply = :summary, reason = :reason,
    lease_owner = NULL, lease_until = NULL, updated_at = :now
WHERE id = :id AND state = 'sending' AND lease_owner = :worker AND attempts = :attempt;

-- name: drop_body
DELETE FROM mailout_queue_body WHERE message = :id;

-- name: add_event
INSERT INTO mailout_queue_event (message, at, attempt, kind, recipient, code, enhanced, text, relay_id)
VALUES (:message, :at, :attempt, :kind, :recipient, :code, :enhanced, :text, :relay_id);

-- name: renew_leases
UPDATE mailout_queue_message SET lease_until = :until
WHERE state = 'sending' AND lease_owner = :worker;

-- name: save_worker
INSERT INTO mailout_queue_worker (
    id, host, pid, started_at, seen_at, in_flight, sent, deferred, failed
) VALUES (:id, :host, :pid, :started_at, :seen_at, :in_flight, :sent, :deferred, :failed)
ON CONFLICT (id) DO UPDATE SET
    seen_at = excluded.seen_at, in_flight = excluded.in_flight, sent = excluded.sent,
    deferred = excluded.deferred, failed = excluded.failed;

-- name: delete_worker
DELETE FROM mailout_queue_worker WHERE id = :id;

-- name: forget_workers
DELETE FROM mailout_queue_worker WHERE seen_at < :before;

-- name: workers
SELECT id, host, pid, started_at, seen_at, in_flight, sent, deferred, failed
FROM mailout_queue_worker ORDER BY started_at;

-- Claimed but never attempted (the worker stopped first): back as it was, attempt uncounted.
-- name: release
UPDATE mailout_queue_message NOT INDEXED
SET state = CASE WHEN attempts > 1 THEN 'deferred' ELSE 'queued' END,
    attempts = attempts - 1, lease_owner = NULL, lease_until = NULL, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'sending' AND lease_owner = :worker;

-- name: expired_lease_events
INSERT INTO mailout_queue_event (message, at, attempt, kind, text)
SELECT id, :now, attempts, 'lease-expired', 'the lease of worker ' || lease_owner || ' expired'
FROM mailout_queue_message WHERE state = 'sending' AND lease_until < :now;

-- A worker that went silent may have delivered: due again at once (at least once).
-- name: release_expired
UPDATE mailout_queue_message
SET state = 'deferred', due_at = :now, lease_owner = NULL, lease_until = NULL, updated_at = :now
WHERE state = 'sending' AND lease_until < :now;

-- name: first_due
SELECT due_at FROM mailout_queue_message
WHERE state = :state AND priority = :priority
  AND mailer NOT IN (SELECT value FROM json_each(:skip_mailers))
ORDER BY due_at LIMIT 1;

-- name: first_due_after
SELECT due_at FROM mailout_queue_message
WHERE state = :state AND priority = :priority AND due_at > :now
ORDER BY due_at LIMIT 1;

-- name: count_by_state
SELECT state, count(*) FROM mailout_queue_message GROUP BY state;

-- Mail not done yet per mailer (sent and failed mail is history: list and show have it).
-- name: count_by_mailer
SELECT mailer, state, count(*) FROM mailout_queue_message
WHERE state IN ('queued', 'deferred', 'sending', 'held')
GROUP BY mailer, state;

-- name: recent_failures
SELECT id, state, mailer, priority, sender, recipients, pending, subject, message_id, size,
    created_at, queued_at, due_at, updated_at, attempts, last_reply, reason, idempotency_key
FROM mailout_queue_message WHERE state = 'failed' ORDER BY updated_at DESC LIMIT :limit;

-- name: list_state
SELECT id, state, mailer, priority, sender, recipients, pending, subject, message_id, size,
    created_at, queued_at, due_at, updated_at, attempts, last_reply, reason, idempotency_key
FROM mailout_queue_message WHERE state = :state ORDER BY updated_at DESC, id DESC LIMIT :limit;

-- name: list_all
SELECT id, state, mailer, priority, sender, recipients, pending, subject, message_id, size,
    created_at, queued_at, due_at, updated_at, attempts, last_reply, reason, idempotency_key
FROM mailout_queue_message ORDER BY id DESC LIMIT :limit;

-- name: get
SELECT id, state, mailer, priority, sender, recipients, pending, subject, message_id, size,
    created_at, queued_at, due_at, updated_at, attempts, last_reply, reason, idempotency_key,
    metadata, (SELECT data FROM mailout_queue_body WHERE message = :id), lease_owner, lease_until
FROM mailout_queue_message WHERE id = :id;

-- name: events
SELECT message, at, attempt, kind, recipient, code, enhanced, text, relay_id
FROM mailout_queue_event WHERE message = :id ORDER BY id;

-- Operations by id (a JSON array) or on every message (`_all`), as Postfix's postsuper.
-- name: hold_ids
UPDATE mailout_queue_message NOT INDEXED SET state = 'held', updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND state IN ('queued', 'deferred')
RETURNING id;

-- name: hold_all
UPDATE mailout_queue_message SET state = 'held', updated_at = :now
WHERE state IN ('queued', 'deferred')
RETURNING id;

-- name: unhold_ids
UPDATE mailout_queue_message NOT INDEXED
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'held'
RETURNING id;

-- name: unhold_all
UPDATE mailout_queue_message
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, updated_at = :now
WHERE state = 'held'
RETURNING id;

-- name: expire_ids
UPDATE mailout_queue_message NOT INDEXED
SET state = 'failed', reason = 'expired', last_reply = 'expired by an operator', updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND state IN ('queued', 'deferred', 'held')
RETURNING id;

-- name: expire_all
UPDATE mailout_queue_message
SET state = 'failed', reason = 'expired', last_reply = 'expired by an operator', updated_at = :now
WHERE state IN ('queued', 'deferred', 'held')
RETURNING id;

-- Deferred mail becomes due now; failed mail is queued again for its undelivered recipients
-- with a new lifetime.
-- name: retry_ids
UPDATE mailout_queue_message NOT INDEXED
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, due_at = :now,
    queued_at = CASE WHEN state = 'failed' THEN :now ELSE queued_at END,
    reason = NULL, updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND state IN ('deferred', 'failed')
RETURNING id;

-- name: retry_all
UPDATE mailout_queue_message
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, due_at = :now,
    queued_at = CASE WHEN state = 'failed' THEN :now ELSE queued_at END,
    reason = NULL, updated_at = :now
WHERE state IN ('deferred', 'failed')
RETURNING id;

-- name: retry_failed
UPDATE mailout_queue_message
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, due_at = :now,
    queued_at = :now, reason = NULL, updated_at = :now
WHERE state = 'failed'
RETURNING id;

-- name: operation_events
INSERT INTO mailout_queue_event (message, at, attempt, kind, text)
SELECT id, :now, attempts, :kind, :text
FROM mailout_queue_message WHERE id IN (SELECT value FROM json_each(:ids));

-- An operator's delete by id (Django's admin), with purge_events and purge_bodies after it. A
-- message a worker holds (sending) is left alone: the worker's lease decides what it becomes.
-- name: delete_ids
DELETE FROM mailout_queue_message NOT INDEXED
WHERE id IN (SELECT value FROM json_each(:ids)) AND state <> 'sending'
RETURNING id;

-- Purge a batch at a time, each in its own short transaction, so writers never wait long.
-- name: purge_pick
SELECT id FROM mailout_queue_message
WHERE state = :state AND updated_at < :before
ORDER BY updated_at LIMIT :limit;

-- name: purge_events
DELETE FROM mailout_queue_event WHERE message IN (SELECT value FROM json_each(:ids));

-- name: purge_bodies
DELETE FROM mailout_queue_body WHERE message IN (SELECT value FROM json_each(:ids));

-- name: purge_messages
DELETE FROM mailout_queue_message WHERE id IN (SELECT value FROM json_each(:ids));
