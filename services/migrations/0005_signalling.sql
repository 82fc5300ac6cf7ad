-- Live sessions (views, calls, probes): the shared state of every signalling process.
-- One row per session; ``instance_id`` is the process that holds the client's connection, so a
-- process receiving a device's signalling message knows where to route it. At most one open
-- session per device. No SDP, candidates or media are ever stored here.
CREATE TABLE signal_sessions (
    session_id   text PRIMARY KEY CHECK (session_id ~ '^[A-Za-z0-9_-]{8,64}$'),
    device_id    text NOT NULL CHECK (device_id ~ '^[a-z0-9-]{1,64}$'),
    purpose      text NOT NULL CHECK (purpose IN ('view', 'call', 'probe')),
    staff_id     text NOT NULL,
    recipient_id text,
    instance_id  text NOT NULL,
    state        text NOT NULL CHECK (state IN ('granted', 'ringing', 'connected', 'closed')),
    started_at   timestamptz NOT NULL,
    deadline     timestamptz NOT NULL,
    extensions   integer NOT NULL DEFAULT 0 CHECK (extensions >= 0),
    answered_at  timestamptz,
    ended_at     timestamptz,
    end_reason   text,
    CHECK ((state = 'closed') = (ended_at IS NOT NULL))
);
CREATE UNIQUE INDEX signal_sessions_one_open ON signal_sessions (device_id) WHERE state <> 'closed';
CREATE INDEX signal_sessions_open_deadline ON signal_sessions (deadline) WHERE state <> 'closed';
CREATE INDEX signal_sessions_ended ON signal_sessions (ended_at) WHERE state = 'closed';
