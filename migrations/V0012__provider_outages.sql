-- A provider that is down (no connection, 500 / 502 / 503 / 504, again and again) is
-- paused like one that refused our credential: its work waits without spending attempts
-- (an hour's outage must not turn events `failed`) and the relay's probe resumes it.
ALTER TABLE provider_pauses ADD COLUMN kind text NOT NULL DEFAULT 'credential'
    CHECK (kind IN ('credential', 'outage'));
ALTER TABLE provider_pause_log ADD COLUMN kind text NOT NULL DEFAULT 'credential';

-- Recent outage answers per provider: OUTAGE_STRIKES within the window start a pause;
-- any other answer clears them.
CREATE TABLE provider_outage_strikes (
    provider  text PRIMARY KEY CHECK (provider IN ('ghl', 'aloware', 'texting')),
    strikes   integer NOT NULL,
    first_at  timestamptz NOT NULL DEFAULT now()
);

-- The relay releases rows still held by a pause that ended (each run): only held rows
-- are looked at.
CREATE INDEX webhook_events_held_idx ON webhook_events (paused_provider) WHERE paused_provider IS NOT NULL;
CREATE INDEX texting_webhook_events_held_idx ON texting_webhook_events (paused_provider) WHERE paused_provider IS NOT NULL;
CREATE INDEX broadcast_webhook_events_held_idx ON broadcast_webhook_events (paused_provider) WHERE paused_provider IS NOT NULL;
