-- The operations surface (SPEC §8).

-- Manual sync requests (sync-contacts, sync-lists) are jobs in the webhook inbox, with
-- its claim, retries, relay and admin views: source `admin`.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_source_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_source_check
    CHECK (source IN ('ghl', 'aloware', 'admin'));

-- What operators did to an event (replay, quarantine, mark-done): every event keeps
-- its whole story.
CREATE TABLE admin_actions (
    id           bigserial PRIMARY KEY,
    event_id     uuid NOT NULL,
    event_source text NOT NULL CHECK (event_source IN ('webhook', 'texting')),
    action       text NOT NULL CHECK (action IN ('replay', 'quarantine', 'mark_done')),
    actor        text,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_actions_event_idx ON admin_actions (event_id, at);

-- At most one alert per key per hour.
CREATE TABLE alerts_sent (
    alert_key    text PRIMARY KEY,
    last_sent_at timestamptz NOT NULL,
    sent_count   integer NOT NULL DEFAULT 1,
    last_body    jsonb NOT NULL
);

-- Agents: a GHL user and the Aloware user of the same person, matched by email.
CREATE TABLE agent_directory (
    agent_key          text PRIMARY KEY,
    display_name       text NOT NULL,
    email              text,
    ghl_user_id        text,
    aloware_user_id    text,
    is_active          boolean NOT NULL DEFAULT true,
    match_notes        jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Retention purges a finished event's payload, keeping the row (its story stays).
ALTER TABLE webhook_events ADD COLUMN payload_purged_at timestamptz;
ALTER TABLE texting_webhook_events ADD COLUMN payload_purged_at timestamptz;
CREATE INDEX webhook_events_finished_idx ON webhook_events (processed_at)
    WHERE status IN ('done', 'skipped', 'failed') AND payload_purged_at IS NULL;
CREATE INDEX texting_webhook_events_finished_idx ON texting_webhook_events (processed_at)
    WHERE status IN ('done', 'skipped', 'failed') AND payload_purged_at IS NULL;
CREATE INDEX write_fingerprints_written_at_idx ON write_fingerprints (written_at);

-- Admin paging: newest first, keyset on (received_at, id), stable while rows arrive.
CREATE INDEX webhook_events_received_id_idx ON webhook_events (received_at DESC, id DESC);
CREATE INDEX texting_webhook_events_received_id_idx ON texting_webhook_events (received_at DESC, id DESC);

-- Tokens taken from each rate budget, for the operators' view of its use.
ALTER TABLE rate_limit_buckets ADD COLUMN taken bigint NOT NULL DEFAULT 0;
