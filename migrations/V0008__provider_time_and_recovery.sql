-- Delivery under real clocks and real faults (SPEC §4–§5).

-- The provider's own time of each change (GHL `timestamp` / `dateUpdated`, Aloware
-- `updated_at`, the texting message's time). The high-water mark orders an entity's
-- events by it; our receive time is only the tie-break, and the clock where a provider
-- gives none.
ALTER TABLE webhook_events ADD COLUMN occurred_at timestamptz;
ALTER TABLE texting_webhook_events ADD COLUMN occurred_at timestamptz;
ALTER TABLE broadcast_webhook_events ADD COLUMN occurred_at timestamptz;
ALTER TABLE entity_watermarks ADD COLUMN applied_occurred_at timestamptz;
UPDATE entity_watermarks SET applied_occurred_at = applied_received_at;
ALTER TABLE entity_watermarks ALTER COLUMN applied_occurred_at SET NOT NULL;

-- A provider that refused our credential (401/403) is paused: its work waits without
-- spending attempts, and the first request after `probe_at` is the probe that resumes
-- it. One row per provider while paused; `provider_pause_log` keeps every pause (the
-- alert is one per pause).
CREATE TABLE provider_pauses (
    provider   text PRIMARY KEY CHECK (provider IN ('ghl', 'aloware', 'texting')),
    paused_at  timestamptz NOT NULL DEFAULT now(),
    reason     text NOT NULL,
    probe_at   timestamptz NOT NULL,
    probes     integer NOT NULL DEFAULT 0
);
CREATE TABLE provider_pause_log (
    id         bigserial PRIMARY KEY,
    provider   text NOT NULL,
    paused_at  timestamptz NOT NULL,
    resumed_at timestamptz,
    reason     text NOT NULL,
    probes     integer NOT NULL DEFAULT 0
);
CREATE INDEX provider_pause_log_open_idx ON provider_pause_log (provider) WHERE resumed_at IS NULL;
-- A row held by a pause names the provider; the resume makes it due again at once.
ALTER TABLE webhook_events ADD COLUMN paused_provider text;
ALTER TABLE texting_webhook_events ADD COLUMN paused_provider text;
ALTER TABLE broadcast_webhook_events ADD COLUMN paused_provider text;

-- The call's record in the GHL conversation gets the same write intent as its note: an
-- event takes it before it writes, so a retry or a racing event of the call adopts the
-- message an earlier attempt wrote instead of writing a second.
ALTER TABLE call_notes
    ADD COLUMN message_creating_event uuid,
    ADD COLUMN message_creating_since timestamptz;

-- Creating a GHL contact for a phone or email: the intent is taken before the create,
-- so a crash between the create and the mapping, or two consumers racing on a new
-- person, never makes a second contact (GHL's search trails its writes).
CREATE TABLE ghl_contact_intents (
    identity        text PRIMARY KEY,
    creating_event  uuid,
    creating_since  timestamptz,
    ghl_contact_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- What the relay last saw of each queue: its creation time (a queue deleted and
-- recreated has lost every message sent to the old one) and since when it has held
-- no message at all (purged, or its messages lost otherwise).
CREATE TABLE queue_observations (
    kind               text PRIMARY KEY,
    queue_url          text NOT NULL,
    created_timestamp  double precision,
    empty_since        timestamptz,
    observed_at        timestamptz NOT NULL DEFAULT now(),
    losses_detected    bigint NOT NULL DEFAULT 0
);

-- Recovery proportional to the work: a message is known lost (its queue was recreated
-- or emptied, it went to the DLQ, or its row shows no sign of life) and the relay
-- re-sends the person's whole chain in order, each row under a new send number; the
-- consumer drops a message whose number is not its row's latest. Order is enforced at
-- the claim: a row waits while an older unfinished row of its person exists, unless
-- that one `yields` (it stepped aside, waiting for a related event).
ALTER TABLE webhook_events ADD COLUMN yields boolean NOT NULL DEFAULT false;
ALTER TABLE texting_webhook_events ADD COLUMN yields boolean NOT NULL DEFAULT false;
ALTER TABLE broadcast_webhook_events ADD COLUMN yields boolean NOT NULL DEFAULT false;
CREATE INDEX webhook_events_unqueued_idx ON webhook_events (person_key)
    WHERE enqueued_at IS NULL AND status IN ('pending', 'error');
CREATE INDEX texting_webhook_events_unqueued_idx ON texting_webhook_events (person_key)
    WHERE enqueued_at IS NULL AND status IN ('pending', 'error');
CREATE INDEX broadcast_webhook_events_unqueued_idx ON broadcast_webhook_events (person_key)
    WHERE enqueued_at IS NULL AND status IN ('pending', 'error');

-- Operators act on broadcast events too.
ALTER TABLE admin_actions DROP CONSTRAINT admin_actions_event_source_check;
ALTER TABLE admin_actions ADD CONSTRAINT admin_actions_event_source_check
    CHECK (event_source IN ('webhook', 'texting', 'broadcast'));
