-- Tables of the sync engine (SPEC §5, §6, §9).

-- One token bucket per GHL location (and per Aloware account), shared by every
-- concurrent consumer: an atomic UPDATE takes a token.
CREATE TABLE rate_limit_buckets (
    bucket_key     text PRIMARY KEY,
    tokens         double precision NOT NULL,
    capacity       double precision NOT NULL,
    refill_per_sec double precision NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Loop prevention (a): what the middleware wrote, to recognise its own echo.
CREATE TABLE write_fingerprints (
    id           bigserial PRIMARY KEY,
    system       text NOT NULL CHECK (system IN ('ghl', 'aloware')),
    entity_id    text NOT NULL,
    fields_hash  text NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX write_fingerprints_lookup_idx ON write_fingerprints (system, entity_id, fields_hash, written_at);

-- One GHL note per Aloware call, updated in place by recording and summary events.
CREATE TABLE call_notes (
    aloware_call_id text PRIMARY KEY,
    ghl_contact_id  text NOT NULL,
    ghl_note_id     text NOT NULL,
    disposition     text,
    recording_url   text,
    summary         text,
    call_facts      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Which GHL tag drives which Aloware power-dialer list.
CREATE TABLE call_list_mappings (
    ghl_tag         text PRIMARY KEY,
    aloware_list_id text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Last known tags of a GHL contact: ContactTagUpdate carries the full list, not a diff.
CREATE TABLE contact_tag_snapshots (
    ghl_contact_id text PRIMARY KEY,
    tags           text[] NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
