-- Texting (SPEC §6) and the SMS opt-out registry (SPEC §7).

-- The audit trail: one row per opt-out, opt-in or help request, from any system.
-- Append-only, enforced here, not by convention: UPDATE, DELETE and TRUNCATE fail, for
-- every role (the trigger fires for the owner too). TCPA claims run 4 years: retention
-- jobs never touch this table.
CREATE TABLE optout_events (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_number      text NOT NULL,
    action            text NOT NULL CHECK (action IN ('opt_out', 'opt_in', 'help')),
    keyword           text,
    source            text NOT NULL CHECK (source IN ('texting', 'ghl', 'aloware', 'admin')),
    source_message_id text NOT NULL,
    raw_text          text,
    received_at       timestamptz NOT NULL,
    applied_at        timestamptz NOT NULL DEFAULT now(),
    -- The registry status this event left (opted_out / opted_in), or NULL for help,
    -- and whether it moved the registry (a STOP from an opted-out number does not).
    resulting_status  text,
    changed_status    boolean NOT NULL DEFAULT false,
    CONSTRAINT optout_events_once UNIQUE (source, source_message_id, action)
);
CREATE INDEX optout_events_phone_idx ON optout_events (phone_number, applied_at);

CREATE FUNCTION optout_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'optout_events is append-only: a new event supersedes an old one';
END
$$;
CREATE TRIGGER optout_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON optout_events
    FOR EACH ROW EXECUTE FUNCTION optout_events_append_only();
CREATE TRIGGER optout_events_no_truncate
    BEFORE TRUNCATE ON optout_events
    FOR EACH STATEMENT EXECUTE FUNCTION optout_events_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON optout_events FROM PUBLIC;

-- The current status per number, and the event that set it (the opt-out confirmation
-- is allowed to an opted-out number only for that event).
ALTER TABLE optout_registry
    ADD COLUMN last_event_id uuid REFERENCES optout_events (id);

-- Every send the texting client attempted, recorded in the same statement that checks
-- the registry (the send guard): refused sends are on record too.
CREATE TABLE texting_sends (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    to_number          text NOT NULL,
    from_number        text,
    purpose            text NOT NULL,
    optout_event_id    uuid,
    status             text NOT NULL CHECK (status IN ('refused', 'sending', 'sent', 'failed')),
    texting_message_id text,
    error_message      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX texting_sends_to_number_idx ON texting_sends (to_number, created_at);

-- At most one reply (opt-out confirmation, help answer) per request event.
CREATE TABLE optout_replies (
    optout_event_id uuid PRIMARY KEY REFERENCES optout_events (id),
    kind            text NOT NULL CHECK (kind IN ('confirmation', 'help')),
    send_id         uuid REFERENCES texting_sends (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The GHL registry mirror: what the contact's SMS DND and tags say, as last written.
CREATE TABLE optout_ghl_state (
    phone_number   text PRIMARY KEY,
    ghl_contact_id text NOT NULL,
    status         text NOT NULL,
    event_id       uuid NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now()
);

-- One GHL record per texting message: the intent is taken before GHL is written, the
-- record's id saved the moment GHL returns it (as for call notes).
ALTER TABLE message_mappings
    ADD COLUMN ghl_record_kind text CHECK (ghl_record_kind IN ('note', 'conversation')),
    ADD COLUMN creating_event  uuid,
    ADD COLUMN creating_since  timestamptz,
    ADD COLUMN status_history  jsonb NOT NULL DEFAULT '[]'::jsonb;

-- One GHL conversation per contact (GHL keeps one per contact).
CREATE TABLE ghl_conversations (
    ghl_contact_id  text PRIMARY KEY,
    conversation_id text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The call, recorded once in the GHL conversation when a provider id is configured.
ALTER TABLE call_notes ADD COLUMN ghl_message_id text;

-- Texting creates and maps contacts too.
ALTER TABLE contact_mappings DROP CONSTRAINT contact_mappings_sync_direction_check;
ALTER TABLE contact_mappings ADD CONSTRAINT contact_mappings_sync_direction_check
    CHECK (sync_direction IN ('aloware_to_ghl', 'ghl_to_aloware', 'texting_to_ghl', 'bidirectional'));
