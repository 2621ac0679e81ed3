-- Bulk replays (SPEC §8): who asked, with what filter, how many rows it selected, how
-- many it reset and queued. Each reset row also has its own admin_actions row.
CREATE TABLE admin_bulk_actions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_source text NOT NULL CHECK (event_source IN ('webhook', 'texting', 'broadcast')),
    action       text NOT NULL CHECK (action IN ('replay')),
    actor        text,
    filter       jsonb NOT NULL,
    selected     bigint NOT NULL,
    replayed     bigint,
    queued       bigint,
    at           timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX admin_bulk_actions_at_idx ON admin_bulk_actions (at);

-- Reveals of personal data in the console (SPEC §8): who saw which item, when.
CREATE TABLE admin_reveals (
    id      bigserial PRIMARY KEY,
    actor   text,
    item    text NOT NULL,
    field   text NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
-- The trail of bulk actions and reveals is append-only for the application.
REVOKE UPDATE, DELETE, TRUNCATE ON admin_reveals FROM df_app;
REVOKE DELETE, TRUNCATE ON admin_bulk_actions FROM df_app;
