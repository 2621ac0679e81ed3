-- The part of Verity's database that broadcast analytics read (SPEC §13): exactly the
-- tables and columns of shared/src/adapters/verity_db.rs, for the local stack and the
-- tests. Verity owns the real schema; this file follows it.
CREATE TABLE IF NOT EXISTS broadcast (
    id          text PRIMARY KEY,
    subject     text,
    channel     text NOT NULL CHECK (channel IN ('sms', 'email')),
    executed_at timestamptz,
    owner_id    text NOT NULL
);
CREATE TABLE IF NOT EXISTS contacts (
    id          text PRIMARY KEY,
    phone_e164  text,
    email       text
);
CREATE TABLE IF NOT EXISTS broadcast_recipient (
    id           text PRIMARY KEY,
    broadcast_id text NOT NULL REFERENCES broadcast (id),
    contact_id   text NOT NULL REFERENCES contacts (id),
    status       text NOT NULL CHECK (status IN ('pending', 'sent', 'delivered', 'opened', 'clicked',
                                                 'failed', 'bounced', 'complained', 'unsubscribed'))
);
CREATE INDEX IF NOT EXISTS broadcast_recipient_broadcast_idx ON broadcast_recipient (broadcast_id);
CREATE INDEX IF NOT EXISTS broadcast_recipient_contact_idx ON broadcast_recipient (contact_id);
CREATE TABLE IF NOT EXISTS chat (
    id       text PRIMARY KEY,
    owner_id text NOT NULL
);
CREATE TABLE IF NOT EXISTS chat_participant (
    id         text PRIMARY KEY,
    chat_id    text NOT NULL REFERENCES chat (id),
    contact_id text REFERENCES contacts (id)
);
CREATE TABLE IF NOT EXISTS chat_message (
    id             text PRIMARY KEY,
    chat_id        text NOT NULL REFERENCES chat (id),
    participant_id text NOT NULL REFERENCES chat_participant (id),
    direction      text NOT NULL CHECK (direction IN ('sent', 'received')),
    broadcast_id   text,
    created_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_message_broadcast_idx ON chat_message (broadcast_id);
CREATE INDEX IF NOT EXISTS chat_message_participant_idx ON chat_message (participant_id, created_at);
CREATE TABLE IF NOT EXISTS leads (
    id                 text PRIMARY KEY,
    contact_id         text NOT NULL REFERENCES contacts (id),
    ghl_appointment_id text,
    last_activity_at   timestamptz,
    created_at         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS leads_contact_idx ON leads (contact_id);
