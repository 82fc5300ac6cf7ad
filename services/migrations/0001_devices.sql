-- Device registry: identity, presence, metadata, last health. Bindings live with consent.
CREATE TABLE devices (
    device_id      text PRIMARY KEY CHECK (device_id ~ '^[a-z0-9-]{1,64}$'),
    kind           text CHECK (kind IN ('camera', 'video_phone')),
    firmware       text,
    caps           text[] NOT NULL DEFAULT '{}',
    video          jsonb,
    presence       text NOT NULL DEFAULT 'unknown'
                   CHECK (presence IN ('unknown', 'online', 'offline', 'stopped')),
    session        bigint NOT NULL DEFAULT 0,
    presence_since timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz,
    health         jsonb,
    health_at      timestamptz,
    quarantined    boolean NOT NULL DEFAULT true,
    first_seen     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE device_commands (
    command_id  text PRIMARY KEY,
    device_id   text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    op          text NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    acked_at    timestamptz,
    ack_ok      boolean,
    ack_detail  text
);
CREATE INDEX device_commands_device ON device_commands (device_id, sent_at DESC);
