-- Delivery guarantees (SPEC §4–§5): the row owns its retry budget, the relay re-sends
-- rows whose queue message died, body-hash dedupe compares with the latest delivery
-- only, and a per-entity high-water mark keeps old events from overwriting new data.

-- Statuses: `error` is a retryable failure that will be retried; `failed` is final
-- (retries exhausted, or not retryable); `quarantined` is held for an operator.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_status_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_status_check
    CHECK (status IN ('pending', 'processing', 'done', 'skipped', 'error', 'failed', 'quarantined'));
ALTER TABLE texting_webhook_events DROP CONSTRAINT texting_webhook_events_status_check;
ALTER TABLE texting_webhook_events ADD CONSTRAINT texting_webhook_events_status_check
    CHECK (status IN ('pending', 'processing', 'done', 'skipped', 'error', 'failed', 'quarantined'));

-- next_attempt_at: when the row is due (the back-off of its last failure).
-- claimed_at: when the current (or last) attempt began; a `processing` claim older than
--   the lease (pipeline::consumer::CLAIM_LEASE) belongs to a consumer that died.
-- enqueued_at / enqueue_count: when a queue message was last sent for the row, and how
--   many were sent (the FIFO deduplication id is `<id>-<count>`). NULL = no message.
-- dedupe_kind: `id` keys are unique for ever; `body` keys (a body hash) are duplicates
--   only of the entity's latest delivery (delivery_heads).
-- watermark_key: the entity whose high-water mark this event is compared with.
ALTER TABLE webhook_events
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN claimed_at      timestamptz,
    ADD COLUMN enqueued_at     timestamptz,
    ADD COLUMN enqueue_count   integer NOT NULL DEFAULT 0,
    ADD COLUMN dedupe_kind     text NOT NULL DEFAULT 'id' CHECK (dedupe_kind IN ('id', 'body')),
    ADD COLUMN watermark_key   text;
ALTER TABLE texting_webhook_events
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN claimed_at      timestamptz,
    ADD COLUMN enqueued_at     timestamptz,
    ADD COLUMN enqueue_count   integer NOT NULL DEFAULT 0,
    ADD COLUMN dedupe_kind     text NOT NULL DEFAULT 'id' CHECK (dedupe_kind IN ('id', 'body')),
    ADD COLUMN watermark_key   text;

-- Rows stored before this migration were all queued at ingest.
UPDATE webhook_events SET enqueued_at = received_at, enqueue_count = 1;
UPDATE texting_webhook_events SET enqueued_at = received_at, enqueue_count = 1;

-- Uniqueness only for provider-id keys; body keys repeat legitimately (A → B → A).
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_dedupe_key_key;
CREATE UNIQUE INDEX webhook_events_dedupe_id_key ON webhook_events (dedupe_key) WHERE dedupe_kind = 'id';
CREATE INDEX webhook_events_dedupe_key_idx ON webhook_events (dedupe_key);
ALTER TABLE texting_webhook_events DROP CONSTRAINT texting_webhook_events_dedupe_key_key;
CREATE UNIQUE INDEX texting_webhook_events_dedupe_id_key ON texting_webhook_events (dedupe_key) WHERE dedupe_kind = 'id';
CREATE INDEX texting_webhook_events_dedupe_key_idx ON texting_webhook_events (dedupe_key);

-- The latest delivery of each body-keyed entity: a new body replaces it (a new event),
-- the same body is a duplicate. One row per (kind, entity); updated in the same
-- statement that inserts the event, so concurrent copies serialise on it.
CREATE TABLE delivery_heads (
    kind        text NOT NULL,
    entity_key  text NOT NULL,
    body_hash   text NOT NULL,
    event_id    uuid NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, entity_key)
);

-- The relay's scans: rows still to be applied, by due time and per person.
DROP INDEX webhook_events_pending_idx;
DROP INDEX texting_webhook_events_pending_idx;
CREATE INDEX webhook_events_due_idx ON webhook_events (next_attempt_at)
    WHERE status IN ('pending', 'error', 'processing');
CREATE INDEX webhook_events_person_active_idx ON webhook_events (person_key, received_at)
    WHERE status IN ('pending', 'error', 'processing');
CREATE INDEX texting_webhook_events_due_idx ON texting_webhook_events (next_attempt_at)
    WHERE status IN ('pending', 'error', 'processing');
CREATE INDEX texting_webhook_events_person_active_idx ON texting_webhook_events (person_key, received_at)
    WHERE status IN ('pending', 'error', 'processing');
CREATE INDEX webhook_events_person_key_idx ON webhook_events (person_key);
-- The person key of a call's later events is its first event's (one predicate, one
-- index: the ingest's lookup never scans other sources' rows).
CREATE INDEX webhook_events_call_idx ON webhook_events (entity_id, received_at)
    WHERE source = 'aloware' AND entity_type IN ('call', 'recording', 'transcription');

-- High-water mark per entity: the receive time of the newest event applied to it.
CREATE TABLE entity_watermarks (
    kind                text NOT NULL,
    entity_key          text NOT NULL,
    applied_received_at timestamptz NOT NULL,
    event_id            uuid NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, entity_key)
);

-- Quarantine holds events of every inbox.
ALTER TABLE quarantine_events DROP CONSTRAINT quarantine_events_event_source_check;
ALTER TABLE quarantine_events ADD CONSTRAINT quarantine_events_event_source_check
    CHECK (event_source IN ('webhook', 'texting', 'broadcast'));

-- One GHL note per call, under any single failure: an event takes the call's note
-- intent (creating_event) before it writes to GHL, so a retry or a racing event finds
-- the intent and either resumes it or waits; the note id is saved the moment GHL
-- returns it.
ALTER TABLE call_notes ALTER COLUMN ghl_contact_id DROP NOT NULL;
ALTER TABLE call_notes ALTER COLUMN ghl_note_id DROP NOT NULL;
ALTER TABLE call_notes
    ADD COLUMN creating_event uuid,
    ADD COLUMN creating_since timestamptz;
-- The call tags already on the GHL contact: a retry adds only what is missing.
ALTER TABLE call_notes ADD COLUMN tags_written text[] NOT NULL DEFAULT '{}';
