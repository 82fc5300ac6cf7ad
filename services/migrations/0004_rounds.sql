-- Night rounds: one row per planned check, every transition, alarms, operators on duty.
-- Only numbers, states and who/when/why: never a frame, image or sound.

CREATE TABLE round_nights (
    night          date PRIMARY KEY,
    planned_at     timestamptz NOT NULL,
    reconciled_at  timestamptz,
    summary        jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE round_checks (
    check_id         text PRIMARY KEY CHECK (check_id ~ '^[0-9]{8}\.[0-9]{4}\.[a-z0-9-]{1,64}$'),
    recipient_id     text NOT NULL,
    device_id        text,
    night            date NOT NULL,
    agreed           time NOT NULL,
    agreed_at        timestamptz NOT NULL,
    window_start     timestamptz NOT NULL,
    window_end       timestamptz NOT NULL,
    policy           jsonb NOT NULL,
    state            text NOT NULL CHECK (state IN (
                         'planned', 'due', 'probing', 'needs_view', 'viewing', 'retry_wait',
                         'calling', 'patrol', 'patrol_acked', 'cleared', 'documented', 'visited',
                         'escalated', 'deviation')),
    since            timestamptz NOT NULL,
    deadline         timestamptz,
    attempt          integer NOT NULL CHECK (attempt >= 1),
    ladder_step      integer NOT NULL CHECK (ladder_step >= 0),
    reason           text,
    holder           text,
    verdict          text,
    version          integer NOT NULL CHECK (version >= 0),
    alarmed_version  integer,
    planned_at       timestamptz NOT NULL,
    CHECK (window_start <= agreed_at AND agreed_at <= window_end),
    CHECK ((deadline IS NULL) = (state IN ('cleared', 'documented', 'visited', 'escalated',
                                           'deviation')))
);
CREATE INDEX round_checks_night ON round_checks (night, recipient_id);
CREATE INDEX round_checks_device ON round_checks (device_id) WHERE deadline IS NOT NULL;
CREATE INDEX round_checks_recipient_open ON round_checks (recipient_id) WHERE deadline IS NOT NULL;
-- the work queue: what opens, what a worker may claim, what the watchdog watches
CREATE INDEX round_checks_queue ON round_checks (state, deadline) WHERE deadline IS NOT NULL;

CREATE TABLE round_transitions (
    check_id    text NOT NULL REFERENCES round_checks (check_id),
    version     integer NOT NULL,  -- the check's version after this transition
    at          timestamptz NOT NULL,
    from_state  text NOT NULL,
    to_state    text NOT NULL,
    event       text NOT NULL,
    actor       text NOT NULL,
    reason      text,
    verdict     text,
    note        text CHECK (note IS NULL OR length(note) <= 2000),
    PRIMARY KEY (check_id, version)  -- one transition per version: nothing is done twice
);
CREATE INDEX round_transitions_at ON round_transitions (at);

CREATE TABLE round_alarms (
    check_id         text NOT NULL REFERENCES round_checks (check_id),
    version          integer NOT NULL,
    state            text NOT NULL,
    deadline         timestamptz NOT NULL,
    raised_at        timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    PRIMARY KEY (check_id, version)
);
CREATE INDEX round_alarms_open ON round_alarms (raised_at) WHERE acknowledged_at IS NULL;

CREATE TABLE round_duty (
    staff_id    text NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    PRIMARY KEY (staff_id, started_at),
    CHECK (ended_at IS NULL OR ended_at > started_at)
);
CREATE UNIQUE INDEX round_duty_one_open ON round_duty (staff_id) WHERE ended_at IS NULL;
