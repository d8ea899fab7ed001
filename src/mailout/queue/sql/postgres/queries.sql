-- The queue's queries on PostgreSQL. Parameters are DB-API "pyformat" (%(name)s), so every
-- query runs through any psycopg cursor, or a Django connection's cursor, as it is. Lists
-- of ids or names are bound as arrays (= ANY(%(ids)s::bigint[])), many rows at once as one
-- JSON document (json_to_recordset): never formatted into query text. A query
-- that reads the partial index of waiting mail repeats its predicate with literal states, so
-- that a prepared (generic) plan can still use it.

-- name: schema_version
SELECT value FROM mailout_queue_meta WHERE name = 'schema_version';

-- name: has_schema
SELECT to_regclass('mailout_queue_meta') IS NOT NULL;

-- name: schema_exists
SELECT count(*) FROM pg_namespace WHERE nspname = %(schema)s;

-- Several hosts may migrate at once: the first takes the lock, the others wait, then find
-- the schema at its version. The key is the schema's name, so queues in other schemas of
-- the same database migrate independently.
-- name: migrate_lock
SELECT pg_advisory_xact_lock(hashtext('mailout_queue_migrate'), hashtext(%(schema)s));

-- name: notify
SELECT pg_notify(%(channel)s, '');

-- A batch is inserted a chunk at a time, each chunk in three statements whatever its size:
-- its ids, its rows (one JSON array of objects: parsed by the server far faster than as many
-- arrays of values would be escaped by the client), its bodies.
-- name: next_ids
SELECT nextval(pg_get_serial_sequence('mailout_queue_message', 'id'))
FROM generate_series(1, %(count)s);

-- A row whose key is already stored (or earlier in the same chunk) is skipped: RETURNING
-- names the rows stored.
-- name: insert_messages
INSERT INTO mailout_queue_message (
    id, idempotency_key, state, mailer, priority, sender, recipients, pending, domain,
    message_id, subject, size, metadata, created_at, queued_at, due_at, updated_at
)
SELECT id, key, 'queued', mailer, priority, sender, recipients, recipients, domain,
    message_id, subject, size, metadata, %(now)s, %(now)s, due_at, %(now)s
FROM json_to_recordset(%(rows)s::json) AS m(
    id bigint, key text, mailer text, priority smallint, sender text, recipients text,
    domain text, message_id text, subject text, size integer, metadata text,
    due_at double precision
)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id;

-- The bodies as one JSON array of [id, base64]: an array of bytea would be escaped value by
-- value on the client.
-- name: insert_bodies
INSERT INTO mailout_queue_body (message, data)
SELECT (b ->> 0)::bigint, decode(b ->> 1, 'base64')
FROM json_array_elements(%(bodies)s::json) AS b;

-- name: id_for_key
SELECT id FROM mailout_queue_message WHERE idempotency_key = %(key)s;

-- Due messages, oldest due first within each priority (0 high, 1 normal, 2 low), that no
-- other worker holds locked right now (SKIP LOCKED: two workers claiming at once take
-- disjoint messages and never wait for each other): up to `limit` new ones and up to `limit`
-- retries, in one round trip. A UNION ALL under a LIMIT runs its branches in order and stops
-- when the limit is reached, so a priority's rows are read and locked only if the ones before
-- it left room. The rows stay locked until this claim commits.
-- name: candidates
(SELECT * FROM (
    SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE state = 'queued' AND priority = 0 AND due_at <= %(now)s
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS q0
    UNION ALL SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE state = 'queued' AND priority = 1 AND due_at <= %(now)s
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS q1
    UNION ALL SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE state = 'queued' AND priority = 2 AND due_at <= %(now)s
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS q2
) AS queued LIMIT %(limit)s)
UNION ALL
(SELECT * FROM (
    SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE state = 'deferred' AND priority = 0 AND due_at <= %(now)s
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS d0
    UNION ALL SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE state = 'deferred' AND priority = 1 AND due_at <= %(now)s
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS d1
    UNION ALL SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE state = 'deferred' AND priority = 2 AND due_at <= %(now)s
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS d2
) AS deferred LIMIT %(limit)s);

-- The same, when the worker leaves some mailers or domains out (at their connection cap, out
-- of tokens): first only the first `window` due messages of each state and priority are looked
-- at for the others' mail (filtering the whole range read every queued row when one big domain
-- was at its cap: 87 000 rows, 90 ms, for a claim that found nothing, again and again); the
-- whole range only now and then (storage/_claim.py: Widening). The locked row's state, priority
-- and due time are compared again (a worker may have changed it since this snapshot), inside
-- IS TRUE so that the planner does not walk the due index for them (the whole range again).
-- name: candidates_excluding
(SELECT * FROM (
    SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE id IN (
            SELECT id FROM mailout_queue_message
            WHERE state = 'queued' AND priority = 0 AND due_at <= %(now)s
            ORDER BY due_at, id LIMIT %(window)s
        ) AND (state = 'queued' AND priority = 0 AND due_at <= %(now)s) IS TRUE
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS q0
    UNION ALL SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE id IN (
            SELECT id FROM mailout_queue_message
            WHERE state = 'queued' AND priority = 1 AND due_at <= %(now)s
            ORDER BY due_at, id LIMIT %(window)s
        ) AND (state = 'queued' AND priority = 1 AND due_at <= %(now)s) IS TRUE
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS q1
    UNION ALL SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE id IN (
            SELECT id FROM mailout_queue_message
            WHERE state = 'queued' AND priority = 2 AND due_at <= %(now)s
            ORDER BY due_at, id LIMIT %(window)s
        ) AND (state = 'queued' AND priority = 2 AND due_at <= %(now)s) IS TRUE
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS q2
) AS queued LIMIT %(limit)s)
UNION ALL
(SELECT * FROM (
    SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE id IN (
            SELECT id FROM mailout_queue_message
            WHERE state = 'deferred' AND priority = 0 AND due_at <= %(now)s
            ORDER BY due_at, id LIMIT %(window)s
        ) AND (state = 'deferred' AND priority = 0 AND due_at <= %(now)s) IS TRUE
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS d0
    UNION ALL SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE id IN (
            SELECT id FROM mailout_queue_message
            WHERE state = 'deferred' AND priority = 1 AND due_at <= %(now)s
            ORDER BY due_at, id LIMIT %(window)s
        ) AND (state = 'deferred' AND priority = 1 AND due_at <= %(now)s) IS TRUE
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS d1
    UNION ALL SELECT * FROM (
        SELECT id, mailer, state, priority FROM mailout_queue_message
        WHERE id IN (
            SELECT id FROM mailout_queue_message
            WHERE state = 'deferred' AND priority = 2 AND due_at <= %(now)s
            ORDER BY due_at, id LIMIT %(window)s
        ) AND (state = 'deferred' AND priority = 2 AND due_at <= %(now)s) IS TRUE
          AND mailer <> ALL(%(skip_mailers)s::text[]) AND domain <> ALL(%(skip_domains)s::text[])
        ORDER BY due_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) AS d2
) AS deferred LIMIT %(limit)s);

-- The claimed rows come back with their bodies, in one round trip. By id, as `record`.
-- name: claim
UPDATE mailout_queue_message AS m
SET state = 'sending', lease_owner = %(worker)s, lease_until = %(until)s,
    attempts = attempts + 1, updated_at = %(now)s
WHERE id = ANY(%(ids)s::bigint[]) AND (state = 'queued' OR state = 'deferred') IS TRUE
RETURNING id, attempts, mailer, priority, sender, pending, message_id, created_at,
    queued_at, delivered, metadata,
    (SELECT data FROM mailout_queue_body AS b WHERE b.message = m.id);

-- A claim that obeys rate limits takes this lock first, so that two workers never spend the
-- same token (claims of unlimited mail never take it), then reads every bucket.
-- name: lock_buckets
SELECT pg_advisory_xact_lock(hashtext('mailout_queue_bucket'), 0);

-- name: buckets
SELECT name, tokens, updated_at, day, day_count FROM mailout_queue_bucket;

-- name: save_bucket
INSERT INTO mailout_queue_bucket (name, tokens, updated_at, day, day_count)
VALUES (%(name)s, %(tokens)s, %(updated_at)s, %(day)s, %(day_count)s)
ON CONFLICT (name) DO UPDATE SET
    tokens = excluded.tokens, updated_at = excluded.updated_at,
    day = excluded.day, day_count = excluded.day_count;

-- name: bucket
SELECT name, tokens, updated_at, day, day_count FROM mailout_queue_bucket WHERE name = %(name)s;

-- Only the worker that holds the lease, for the attempt it claimed, may record an outcome.
-- The rows are found by id (the primary key): state and lease owner are compared with IS NOT
-- DISTINCT FROM, which no index serves, so that the planner never walks an index by state or
-- owner instead -- those keep an entry for every message ever claimed until vacuum, and a
-- worker recording through them slowed down with every message it had sent (a 100 000-message
-- drain spent 17 ms a group on it, against 3).
-- A group of outcomes in one statement, one round trip: one JSON array of objects, each with
-- the recipients still pending (a JSON array, stored as its text) and its events (one per
-- recipient, inserted in order) -- the events and dropped bodies of the outcomes recorded only.
-- name: record
WITH done AS (
    UPDATE mailout_queue_message AS m
    SET state = o.state, pending = o.pending::text, due_at = coalesce(o.due_at, m.due_at),
        delivered = m.delivered + o.delivered, last_reply = o.summary, reason = o.reason,
        lease_owner = NULL, lease_until = NULL, updated_at = %(now)s
    FROM ROWS FROM (json_to_recordset(%(outcomes)s::json) AS (
        id bigint, attempt integer, state text, pending json, due_at double precision,
        delivered integer, summary text, reason text, events json
    )) WITH ORDINALITY AS o(
        id, attempt, state, pending, due_at, delivered, summary, reason, events, n
    )
    WHERE m.id = ANY(%(ids)s::bigint[]) AND m.id = o.id AND m.attempts = o.attempt
      AND (m.state, m.lease_owner) IS NOT DISTINCT FROM ('sending', %(worker)s::text)
    RETURNING m.id, m.state, o.attempt, o.events, o.n
), dropped AS (
    DELETE FROM mailout_queue_body
    WHERE NOT %(keep_body)s AND message IN (SELECT id FROM done WHERE state = 'sent')
), added AS (
    INSERT INTO mailout_queue_event (
        message, at, attempt, kind, recipient, code, enhanced, text, relay_id
    )
    SELECT done.id, %(now)s, done.attempt, e.kind, e.recipient, e.code, e.enhanced,
        coalesce(e.text, ''), e.relay_id
    FROM done, ROWS FROM (json_to_recordset(done.events) AS (
        kind text, recipient text, code integer, enhanced text, text text, relay_id text
    )) WITH ORDINALITY AS e(kind, recipient, code, enhanced, text, relay_id, n)
    ORDER BY done.n, e.n
)
SELECT id FROM done;

-- name: add_events
INSERT INTO mailout_queue_event (message, at, attempt, kind, recipient, code, enhanced, text, relay_id)
SELECT message, at, attempt, kind, recipient, code, enhanced, coalesce(text, ''), relay_id
FROM json_to_recordset(%(events)s::json) AS e(
    message bigint, at double precision, attempt integer, kind text, recipient text,
    code integer, enhanced text, text text, relay_id text
);

-- A worker renews the leases of the messages it knows it holds (not every row that names
-- it: a claim whose commit it never heard of must expire, not be renewed for ever). By id,
-- as `record`.
-- name: renew_leases
UPDATE mailout_queue_message SET lease_until = %(until)s
WHERE id = ANY(%(ids)s::bigint[])
  AND (state, lease_owner) IS NOT DISTINCT FROM ('sending', %(worker)s::text);

-- name: save_worker
INSERT INTO mailout_queue_worker (
    id, host, pid, started_at, seen_at, in_flight, sent, deferred, failed
) VALUES (
    %(id)s, %(host)s, %(pid)s, %(started_at)s, %(seen_at)s, %(in_flight)s, %(sent)s,
    %(deferred)s, %(failed)s
)
ON CONFLICT (id) DO UPDATE SET
    seen_at = excluded.seen_at, in_flight = excluded.in_flight, sent = excluded.sent,
    deferred = excluded.deferred, failed = excluded.failed;

-- name: delete_worker
DELETE FROM mailout_queue_worker WHERE id = %(id)s;

-- name: forget_workers
DELETE FROM mailout_queue_worker WHERE seen_at < %(before)s;

-- name: workers
SELECT id, host, pid, started_at, seen_at, in_flight, sent, deferred, failed
FROM mailout_queue_worker ORDER BY started_at, id;

-- name: release
UPDATE mailout_queue_message
SET state = CASE WHEN attempts > 1 THEN 'deferred' ELSE 'queued' END,
    attempts = attempts - 1, lease_owner = NULL, lease_until = NULL, updated_at = %(now)s
WHERE id = ANY(%(ids)s::bigint[])
  AND (state, lease_owner) IS NOT DISTINCT FROM ('sending', %(worker)s::text);

-- Whoever finds an expired lease releases it; SKIP LOCKED, so that two workers doing this
-- at once never wait for each other (each releases what it locked).
-- name: expired_leases
SELECT id, attempts, lease_owner FROM mailout_queue_message
WHERE state = 'sending' AND lease_until < %(now)s
ORDER BY id
LIMIT 10000
FOR UPDATE SKIP LOCKED;

-- name: release_expired
UPDATE mailout_queue_message
SET state = 'deferred', due_at = %(now)s, lease_owner = NULL, lease_until = NULL,
    updated_at = %(now)s
WHERE id = ANY(%(ids)s::bigint[]);

-- name: first_due
SELECT due_at FROM mailout_queue_message
WHERE state = %(state)s AND state IN ('queued', 'deferred') AND priority = %(priority)s
  AND mailer <> ALL(%(skip_mailers)s::text[])
ORDER BY due_at LIMIT 1;

-- name: first_due_after
SELECT due_at FROM mailout_queue_message
WHERE state = %(state)s AND state IN ('queued', 'deferred') AND priority = %(priority)s
  AND due_at > %(now)s
ORDER BY due_at LIMIT 1;

-- name: count_by_state
SELECT state, count(*) FROM mailout_queue_message GROUP BY state;

-- Live mail per mailer (sent and failed mail is history: `list` and `show` have it).
-- name: count_by_mailer
SELECT mailer, state, count(*) FROM mailout_queue_message
WHERE state IN ('queued', 'deferred', 'sending', 'held')
GROUP BY mailer, state;

-- name: recent_failures
SELECT id, state, mailer, priority, sender, recipients, pending, subject, message_id, size,
    created_at, queued_at, due_at, updated_at, attempts, last_reply, reason, idempotency_key
FROM mailout_queue_message WHERE state = 'failed' ORDER BY updated_at DESC LIMIT %(limit)s;

-- name: list_state
SELECT id, state, mailer, priority, sender, recipients, pending, subject, message_id, size,
    created_at, queued_at, due_at, updated_at, attempts, last_reply, reason, idempotency_key
FROM mailout_queue_message WHERE state = %(state)s
ORDER BY updated_at DESC, id DESC LIMIT %(limit)s;

-- name: list_all
SELECT id, state, mailer, priority, sender, recipients, pending, subject, message_id, size,
    created_at, queued_at, due_at, updated_at, attempts, last_reply, reason, idempotency_key
FROM mailout_queue_message ORDER BY id DESC LIMIT %(limit)s;

-- name: get
SELECT id, state, mailer, priority, sender, recipients, pending, subject, message_id, size,
    created_at, queued_at, due_at, updated_at, attempts, last_reply, reason, idempotency_key,
    metadata, (SELECT data FROM mailout_queue_body WHERE message = %(id)s), lease_owner,
    lease_until
FROM mailout_queue_message WHERE id = %(id)s;

-- name: events
SELECT message, at, attempt, kind, recipient, code, enhanced, text, relay_id
FROM mailout_queue_event WHERE message = %(id)s ORDER BY id;

-- Operations by id (an array) or on every message (`_all`), as Postfix's postsuper.
-- name: hold_ids
UPDATE mailout_queue_message SET state = 'held', updated_at = %(now)s
WHERE id = ANY(%(ids)s::bigint[]) AND state IN ('queued', 'deferred')
RETURNING id;

-- name: hold_all
UPDATE mailout_queue_message SET state = 'held', updated_at = %(now)s
WHERE state IN ('queued', 'deferred')
RETURNING id;

-- name: unhold_ids
UPDATE mailout_queue_message
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, updated_at = %(now)s
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'held'
RETURNING id;

-- name: unhold_all
UPDATE mailout_queue_message
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, updated_at = %(now)s
WHERE state = 'held'
RETURNING id;

-- name: expire_ids
UPDATE mailout_queue_message
SET state = 'failed', reason = 'expired', last_reply = 'expired by an operator',
    updated_at = %(now)s
WHERE id = ANY(%(ids)s::bigint[]) AND state IN ('queued', 'deferred', 'held')
RETURNING id;

-- name: expire_all
UPDATE mailout_queue_message
SET state = 'failed', reason = 'expired', last_reply = 'expired by an operator',
    updated_at = %(now)s
WHERE state IN ('queued', 'deferred', 'held')
RETURNING id;

-- name: retry_ids
UPDATE mailout_queue_message
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, due_at = %(now)s,
    queued_at = CASE WHEN state = 'failed' THEN %(now)s ELSE queued_at END,
    reason = NULL, updated_at = %(now)s
WHERE id = ANY(%(ids)s::bigint[]) AND state IN ('deferred', 'failed')
RETURNING id;

-- name: retry_all
UPDATE mailout_queue_message
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, due_at = %(now)s,
    queued_at = CASE WHEN state = 'failed' THEN %(now)s ELSE queued_at END,
    reason = NULL, updated_at = %(now)s
WHERE state IN ('deferred', 'failed')
RETURNING id;

-- name: retry_failed
UPDATE mailout_queue_message
SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, due_at = %(now)s,
    queued_at = %(now)s, reason = NULL, updated_at = %(now)s
WHERE state = 'failed'
RETURNING id;

-- name: operation_events
INSERT INTO mailout_queue_event (message, at, attempt, kind, text)
SELECT id, %(now)s, attempts, %(kind)s, %(text)s
FROM mailout_queue_message WHERE id = ANY(%(ids)s::bigint[]);

-- An operator's delete by id (Django's admin), with purge_events and purge_bodies after it. A
-- message a worker holds (sending) is left alone: the worker's lease decides what it becomes.
-- name: delete_ids
DELETE FROM mailout_queue_message
WHERE id = ANY(%(ids)s::bigint[]) AND state <> 'sending'
RETURNING id;

-- name: purge_pick
SELECT id FROM mailout_queue_message
WHERE state = %(state)s AND updated_at < %(before)s
ORDER BY updated_at LIMIT %(limit)s;

-- name: purge_events
DELETE FROM mailout_queue_event WHERE message = ANY(%(ids)s::bigint[]);

-- name: purge_bodies
DELETE FROM mailout_queue_body WHERE message = ANY(%(ids)s::bigint[]);

-- name: purge_messages
DELETE FROM mailout_queue_message WHERE id = ANY(%(ids)s::bigint[]);

-- Connection slots (per mailer, per domain) shared by every worker: see the schema. A
-- delivery takes its slots in a transaction holding the advisory lock of each name it needs
-- (taken in sorted order, so two workers never deadlock): two workers never both see the
-- last free slot. Volatile functions in the select list run after ORDER BY (PostgreSQL 9.6+).
-- name: lock_slots
SELECT pg_advisory_xact_lock(hashtext('mailout_queue_slot'), hashtext(key))
FROM unnest(%(keys)s::text[]) AS key
ORDER BY key;

-- name: slots_used
SELECT kind, name, sum(used) FROM mailout_queue_slot
WHERE until >= %(now)s AND kind || ':' || name = ANY(%(keys)s::text[])
GROUP BY kind, name;

-- name: take_slots
INSERT INTO mailout_queue_slot (holder, worker, kind, name, used, until)
SELECT %(holder)s, %(worker)s, kind, name, used, %(until)s
FROM unnest(%(kinds)s::text[], %(names)s::text[], %(useds)s::integer[]) AS s(kind, name, used)
ON CONFLICT (kind, name, holder) DO NOTHING;

-- A delivery gives its slots back and, if asked, wakes the workers that may wait for one
-- (a NOTIFY delivered on commit, its payload saying it is not new mail), in one statement.
-- name: give_slots
WITH given AS (DELETE FROM mailout_queue_slot WHERE holder = %(holder)s RETURNING 1)
SELECT pg_notify(%(channel)s, %(payload)s) WHERE %(notify)s AND EXISTS (SELECT FROM given);

-- name: renew_slots
UPDATE mailout_queue_slot SET until = %(until)s WHERE worker = %(worker)s;

-- Names with at least `least` slots in use (the smallest cap): the caller compares each with
-- its own cap.
-- name: busy_slots
SELECT kind, name, sum(used) FROM mailout_queue_slot
WHERE until >= %(now)s
GROUP BY kind, name
HAVING sum(used) >= %(least)s;

-- name: forget_slots
DELETE FROM mailout_queue_slot WHERE worker = %(worker)s OR until < %(before)s;
