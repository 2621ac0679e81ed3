-- The nine tables of the seed documents (snake_case, timestamptz), plus the columns
-- ingest and processing need: person_key (SQS ordering), location_id (GHL rate
-- budget), attempts, skip reasons and timestamps of each transition.

CREATE TABLE webhook_events (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    received_at   timestamptz NOT NULL DEFAULT now(),
    source        text NOT NULL CHECK (source IN ('ghl', 'aloware')),
    event_type    text NOT NULL,
    entity_type   text NOT NULL,
    entity_id     text,
    person_key    text,
    location_id   text,
    payload_json  jsonb NOT NULL,
    dedupe_key    text NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processing', 'done', 'skipped', 'error')),
    error_message text,
    skip_reason   text,
    attempts      integer NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    CONSTRAINT webhook_events_dedupe_key_key UNIQUE (dedupe_key)
);
CREATE INDEX webhook_events_status_idx ON webhook_events (status);
CREATE INDEX webhook_events_source_status_idx ON webhook_events (source, status);
CREATE INDEX webhook_events_received_at_idx ON webhook_events (received_at);
CREATE INDEX webhook_events_entity_idx ON webhook_events (entity_type, entity_id);
-- The sweeper's scan: oldest pending first.
CREATE INDEX webhook_events_pending_idx ON webhook_events (received_at) WHERE status = 'pending';

CREATE TABLE texting_webhook_events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    received_at     timestamptz NOT NULL DEFAULT now(),
    event_type      text NOT NULL,
    entity_type     text NOT NULL,
    entity_id       text,
    conversation_id text,
    from_number     text,
    to_number       text,
    person_key      text,
    payload_json    jsonb NOT NULL,
    dedupe_key      text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'done', 'skipped', 'error')),
    error_message   text,
    skip_reason     text,
    attempts        integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz,
    CONSTRAINT texting_webhook_events_dedupe_key_key UNIQUE (dedupe_key)
);
CREATE INDEX texting_webhook_events_status_idx ON texting_webhook_events (status);
CREATE INDEX texting_webhook_events_received_at_idx ON texting_webhook_events (received_at);
CREATE INDEX texting_webhook_events_entity_id_idx ON texting_webhook_events (entity_id);
CREATE INDEX texting_webhook_events_conversation_id_idx ON texting_webhook_events (conversation_id);
CREATE INDEX texting_webhook_events_from_number_idx ON texting_webhook_events (from_number);
CREATE INDEX texting_webhook_events_pending_idx ON texting_webhook_events (received_at) WHERE status = 'pending';

CREATE TABLE sync_log (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    direction      text NOT NULL,
    entity_type    text NOT NULL,
    entity_id      text,
    source_id      text,
    target_id      text,
    status         text NOT NULL CHECK (status IN ('success', 'error', 'skipped')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    error_message  text,
    correlation_id text,
    decisions      jsonb
);
CREATE INDEX sync_log_entity_idx ON sync_log (entity_type, entity_id);
CREATE INDEX sync_log_direction_idx ON sync_log (direction);
CREATE INDEX sync_log_started_at_idx ON sync_log (started_at);
CREATE INDEX sync_log_correlation_id_idx ON sync_log (correlation_id);

CREATE TABLE sync_state (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    direction         text NOT NULL,
    entity_type       text NOT NULL,
    cursor_updated_at timestamptz,
    cursor_id         text,
    last_run_at       timestamptz,
    last_success_at   timestamptz,
    CONSTRAINT sync_state_direction_entity_type_key UNIQUE (direction, entity_type)
);

CREATE TABLE contact_mappings (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    aloware_contact_id text UNIQUE,
    ghl_contact_id     text UNIQUE,
    phone_number       text,
    email              text,
    last_synced_at     timestamptz NOT NULL DEFAULT now(),
    sync_direction     text NOT NULL DEFAULT 'bidirectional'
                       CHECK (sync_direction IN ('aloware_to_ghl', 'ghl_to_aloware', 'bidirectional')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_mappings_phone_number_idx ON contact_mappings (phone_number);
CREATE INDEX contact_mappings_email_idx ON contact_mappings (email);

CREATE TABLE message_mappings (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    texting_message_id text UNIQUE,
    ghl_message_id     text UNIQUE,
    aloware_message_id text UNIQUE,
    conversation_id    text,
    ghl_contact_id     text,
    aloware_contact_id text,
    from_number        text,
    to_number          text,
    direction          text,
    status             text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_mappings_conversation_id_idx ON message_mappings (conversation_id);
CREATE INDEX message_mappings_ghl_contact_id_idx ON message_mappings (ghl_contact_id);
CREATE INDEX message_mappings_aloware_contact_id_idx ON message_mappings (aloware_contact_id);
CREATE INDEX message_mappings_from_number_idx ON message_mappings (from_number);
CREATE INDEX message_mappings_to_number_idx ON message_mappings (to_number);

CREATE TABLE optout_registry (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_number  text NOT NULL UNIQUE,
    status        text NOT NULL CHECK (status IN ('opted_out', 'opted_in')),
    source        text,
    reason        text,
    last_event_at timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX optout_registry_status_idx ON optout_registry (status);

CREATE TABLE reconcile_runs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_name      text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    status        text NOT NULL,
    totals        jsonb,
    error_message text
);
CREATE INDEX reconcile_runs_job_name_idx ON reconcile_runs (job_name);
CREATE INDEX reconcile_runs_started_at_idx ON reconcile_runs (started_at);

CREATE TABLE quarantine_events (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id       uuid NOT NULL,
    event_source   text NOT NULL CHECK (event_source IN ('webhook', 'texting')),
    reason         text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    quarantined_by text
);
CREATE INDEX quarantine_events_event_id_idx ON quarantine_events (event_id);
CREATE INDEX quarantine_events_event_source_idx ON quarantine_events (event_source);
