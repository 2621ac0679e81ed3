-- Broadcast analytics (SPEC §13): Verity's broadcast events and GHL appointments that
-- re-compute a broadcast, in their own inbox with the same lifecycle as the others
-- (row-owned retries, relay, quarantine), and the per-broadcast sync state.

-- `entity_id` is the broadcast id (the generic event store reads `entity_id`);
-- `broadcast_id` names it as SPEC §13 does. `source`: who asked for the computation.
CREATE TABLE broadcast_webhook_events (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    received_at      timestamptz NOT NULL DEFAULT now(),
    source           text NOT NULL DEFAULT 'verity' CHECK (source IN ('verity', 'ghl_appointment')),
    event_type       text NOT NULL,
    entity_type      text NOT NULL DEFAULT 'broadcast',
    entity_id        text NOT NULL,
    broadcast_id     text GENERATED ALWAYS AS (entity_id) STORED,
    person_key       text,
    payload_json     jsonb NOT NULL,
    dedupe_key       text NOT NULL,
    dedupe_kind      text NOT NULL DEFAULT 'id' CHECK (dedupe_kind IN ('id', 'body')),
    watermark_key    text,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'done', 'skipped', 'error', 'failed', 'quarantined')),
    error_message    text,
    skip_reason      text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_at       timestamptz,
    enqueued_at      timestamptz,
    enqueue_count    integer NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    processed_at     timestamptz,
    payload_purged_at timestamptz,
    -- A waiting row answers every event coalesced into it: the latest one's time. Its
    -- computation must start after this, so an earlier computation cannot settle it.
    coalesced_at     timestamptz
);
CREATE UNIQUE INDEX broadcast_webhook_events_dedupe_id_key ON broadcast_webhook_events (dedupe_key) WHERE dedupe_kind = 'id';
CREATE INDEX broadcast_webhook_events_status_idx ON broadcast_webhook_events (status);
CREATE INDEX broadcast_webhook_events_broadcast_idx ON broadcast_webhook_events (entity_id, received_at);
CREATE INDEX broadcast_webhook_events_received_id_idx ON broadcast_webhook_events (received_at DESC, id DESC);
CREATE INDEX broadcast_webhook_events_due_idx ON broadcast_webhook_events (next_attempt_at)
    WHERE status IN ('pending', 'error', 'processing');
CREATE INDEX broadcast_webhook_events_person_active_idx ON broadcast_webhook_events (person_key, received_at)
    WHERE status IN ('pending', 'error', 'processing');
CREATE INDEX broadcast_webhook_events_finished_idx ON broadcast_webhook_events (processed_at)
    WHERE status IN ('done', 'skipped', 'failed');

-- One row per broadcast: the GHL record it is kept in, the last computation (its start
-- time covers every event received before it), the figures written, and a short lease
-- so only one computation of a broadcast runs at a time.
CREATE TABLE broadcast_sync_state (
    broadcast_id     text PRIMARY KEY,
    ghl_record_id    text,
    computed_at      timestamptz,
    figures          jsonb,
    lease_until      timestamptz,
    computations     bigint NOT NULL DEFAULT 0,
    ghl_writes       bigint NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
