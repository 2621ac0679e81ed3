-- The SMS opt-out registry as the one source of truth (SPEC §7).

-- Every request keeps when the person made it (`occurred_at`: the provider's time of
-- the message or change) apart from when we received it; the registry is ordered by
-- the former. Rows recorded before this migration carried the message time in
-- `received_at`.
ALTER TABLE optout_events ADD COLUMN occurred_at timestamptz;
UPDATE optout_events SET occurred_at = received_at;
ALTER TABLE optout_events ALTER COLUMN occurred_at SET NOT NULL;
-- Who acted, for a change made in GHL (its webhook's user / workflow fields, its DND
-- settings): kept here, because payloads are purged and this is kept for ever.
ALTER TABLE optout_events ADD COLUMN evidence jsonb NOT NULL DEFAULT '{}'::jsonb;
-- A request older than the latest one applied: on record, but it moved nothing.
ALTER TABLE optout_events ADD COLUMN superseded boolean NOT NULL DEFAULT false;
-- `review`: a message that may be a revocation; an operator decides.
ALTER TABLE optout_events DROP CONSTRAINT optout_events_action_check;
ALTER TABLE optout_events ADD CONSTRAINT optout_events_action_check
    CHECK (action IN ('opt_out', 'opt_in', 'help', 'review'));

ALTER TABLE optout_registry ADD COLUMN last_request_at timestamptz;
UPDATE optout_registry SET last_request_at = last_event_at;
-- Registry keys are E.164 numbers.
ALTER TABLE optout_registry ADD CONSTRAINT optout_registry_e164 CHECK (phone_number ~ '^\+[1-9][0-9]{6,14}$');

-- The registry follows the audit trail and nothing else: an event is applied by the
-- database as it is inserted, in the order of the person's own requests. The functions
-- may not write the registry at all (V0010): no status without an event.
CREATE OR REPLACE FUNCTION optout_events_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    cur record;
BEGIN
    -- One request per number at a time; a send guard takes the same key shared.
    PERFORM pg_advisory_xact_lock(hashtextextended(NEW.phone_number, 0));
    SELECT status, last_request_at INTO cur FROM optout_registry WHERE phone_number = NEW.phone_number;
    NEW.changed_status := false;
    NEW.superseded := false;
    NEW.resulting_status := cur.status;
    IF NEW.action NOT IN ('opt_out', 'opt_in') THEN
        RETURN NEW;
    END IF;
    IF cur.last_request_at IS NOT NULL AND NEW.occurred_at < cur.last_request_at THEN
        -- Older than the latest request applied: an opt-in made before the latest
        -- opt-out never re-subscribes, and the reverse holds too.
        NEW.superseded := true;
        RETURN NEW;
    END IF;
    IF NEW.action = 'opt_out' THEN
        NEW.resulting_status := 'opted_out';
        NEW.changed_status := cur.status IS DISTINCT FROM 'opted_out';
    ELSIF cur.status = 'opted_out' THEN
        NEW.resulting_status := 'opted_in';
        NEW.changed_status := true;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION optout_events_to_registry() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF NEW.action NOT IN ('opt_out', 'opt_in') OR NEW.superseded OR NEW.resulting_status IS NULL THEN
        RETURN NULL;
    END IF;
    IF NEW.changed_status THEN
        INSERT INTO optout_registry (phone_number, status, source, reason, last_event_at, last_event_id, last_request_at)
        VALUES (NEW.phone_number, NEW.resulting_status, NEW.source, NEW.keyword, NEW.occurred_at, NEW.id, NEW.occurred_at)
        ON CONFLICT (phone_number) DO UPDATE SET status = EXCLUDED.status, source = EXCLUDED.source,
            reason = EXCLUDED.reason, last_event_at = EXCLUDED.last_event_at,
            last_event_id = EXCLUDED.last_event_id, last_request_at = EXCLUDED.last_request_at,
            updated_at = now();
    ELSE
        -- A repeat of the current status: it moves the latest request's time only.
        UPDATE optout_registry SET last_request_at = GREATEST(last_request_at, NEW.occurred_at), updated_at = now()
        WHERE phone_number = NEW.phone_number;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER optout_events_apply BEFORE INSERT ON optout_events
    FOR EACH ROW EXECUTE FUNCTION optout_events_apply();
CREATE TRIGGER optout_events_to_registry AFTER INSERT ON optout_events
    FOR EACH ROW EXECUTE FUNCTION optout_events_to_registry();

-- What GHL was last told, per GHL contact (not per phone): a duplicate contact of the
-- number, or one made later, is written too.
CREATE TABLE optout_ghl_contacts (
    phone_number   text NOT NULL,
    ghl_contact_id text NOT NULL,
    status         text NOT NULL,
    event_id       uuid NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (phone_number, ghl_contact_id)
);
INSERT INTO optout_ghl_contacts (phone_number, ghl_contact_id, status, event_id, applied_at)
    SELECT phone_number, ghl_contact_id, status, event_id, applied_at FROM optout_ghl_state;

-- An operator's decision on a `review` message: `opt_out` (recorded as an opt-out of
-- source `admin`) or `dismiss`. Append-only like the events.
CREATE TABLE optout_review_resolutions (
    review_event_id uuid PRIMARY KEY REFERENCES optout_events (id),
    resolution      text NOT NULL CHECK (resolution IN ('opt_out', 'dismiss')),
    reason          text NOT NULL,
    resolved_by     text,
    optout_event_id uuid REFERENCES optout_events (id),
    resolved_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER optout_review_resolutions_no_update_or_delete
    BEFORE UPDATE OR DELETE ON optout_review_resolutions
    FOR EACH ROW EXECUTE FUNCTION optout_events_append_only();

-- Texts to an opted-out number that the middleware did not send (the texting system's
-- own `message.sent`, an Aloware agent's `OutboundSMS…`): a compliance incident each.
CREATE TABLE compliance_incidents (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_number   text NOT NULL,
    source         text NOT NULL,
    event_id       uuid NOT NULL,
    sent_at        timestamptz NOT NULL,
    optout_event_id uuid,
    detected_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX compliance_incidents_detected_idx ON compliance_incidents (detected_at);

-- Opt-out jobs (the reply and the GHL mirror of a recorded request) live in the inbox of
-- the request, in a message group of their own: source `registry` in the webhook inbox.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_source_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_source_check
    CHECK (source IN ('ghl', 'aloware', 'admin', 'registry'));

-- Sends the Verity gateway and MCP refused or passed are on record beside the texting
-- client's (`purpose` names the path).
CREATE INDEX texting_sends_status_idx ON texting_sends (status, created_at);
