-- Consent slice: brukare, cohabitants, care plans, consents (versioned, append-only) and their
-- withdrawals, pauses, two-step device bindings, behaviour events and suspensions.
-- Display names, homes, notes and free-text reasons are personal data: they stay in these tables
-- and never reach a log or the audit log.
--
-- Binding and quarantine: a device never becomes bound by itself. Confirming a 'bind' request
-- inserts the device_bindings row and sets devices.quarantined = false; confirming an 'unbind'
-- request closes the row and sets devices.quarantined = true; each in one transaction together
-- with its audit entry (consent/store.py).

CREATE TABLE care_recipients (
    recipient_id  text PRIMARY KEY CHECK (recipient_id ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    home          text NOT NULL DEFAULT '',
    time_zone     text NOT NULL DEFAULT 'Europe/Stockholm',
    language      text NOT NULL DEFAULT 'sv',
    created_at    timestamptz NOT NULL,
    created_by    text NOT NULL
);

CREATE TABLE cohabitants (
    cohabitant_id text PRIMARY KEY CHECK (cohabitant_id ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    recipient_id  text NOT NULL REFERENCES care_recipients,
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    moved_in_at   timestamptz NOT NULL,
    moved_out_at  timestamptz CHECK (moved_out_at IS NULL OR moved_out_at >= moved_in_at)
);
CREATE INDEX cohabitants_recipient ON cohabitants (recipient_id);

CREATE TABLE care_plans (
    plan_id          text PRIMARY KEY,
    recipient_id     text NOT NULL REFERENCES care_recipients,
    decision_ref     text NOT NULL,
    valid_from       timestamptz NOT NULL,
    valid_until      timestamptz CHECK (valid_until IS NULL OR valid_until > valid_from),
    checks           jsonb NOT NULL,  -- [{"at": "22:30", "tolerance_min": 15}, ...] night order
    view_cap_s       integer NOT NULL CHECK (view_cap_s > 0),
    motion_may_clear boolean NOT NULL,
    retry_interval_s integer NOT NULL CHECK (retry_interval_s > 0),
    escalation       text[] NOT NULL,
    instruction      text NOT NULL DEFAULT '',
    paused_checks    text NOT NULL CHECK (paused_checks IN ('drop', 'physical_visit')),
    created_at       timestamptz NOT NULL,
    created_by       text NOT NULL,
    ended_at         timestamptz,
    ended_by         text
);
CREATE INDEX care_plans_recipient ON care_plans (recipient_id, valid_from);

CREATE TABLE consents (
    consent_id    text PRIMARY KEY,
    recipient_id  text NOT NULL REFERENCES care_recipients,
    cohabitant_id text REFERENCES cohabitants,
    purpose       text NOT NULL
                  CHECK (purpose IN ('camera_check', 'motion_analysis', 'video_call', 'auto_answer')),
    version       integer NOT NULL CHECK (version >= 1),
    basis         text CHECK (basis IN ('informed_consent', 'other_legal_basis')),
    basis_ref     text,
    informed_by   text,
    informed_how  text,
    given_at      timestamptz NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_until   timestamptz CHECK (valid_until IS NULL OR valid_until > valid_from),
    windows       jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [{"start": "22:00", "end": "06:00"}]
    document_ref  text,
    recorded_at   timestamptz NOT NULL,
    recorded_by   text NOT NULL,
    UNIQUE NULLS NOT DISTINCT (recipient_id, cohabitant_id, purpose, version)
);
CREATE INDEX consents_recipient ON consents (recipient_id);

-- A withdrawal is its own row: consent rows are never updated.
CREATE TABLE consent_withdrawals (
    consent_id   text PRIMARY KEY REFERENCES consents,
    withdrawn_at timestamptz NOT NULL,
    withdrawn_by text NOT NULL,
    reason       text,
    recorded_at  timestamptz NOT NULL
);

CREATE FUNCTION consent_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER consents_append_only BEFORE UPDATE OR DELETE ON consents
    FOR EACH ROW EXECUTE FUNCTION consent_refuse_change();
CREATE TRIGGER consent_withdrawals_append_only BEFORE UPDATE OR DELETE ON consent_withdrawals
    FOR EACH ROW EXECUTE FUNCTION consent_refuse_change();

CREATE TABLE pauses (
    pause_id     text PRIMARY KEY,
    recipient_id text NOT NULL REFERENCES care_recipients,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz CHECK (ends_at IS NULL OR ends_at >= starts_at),
    source       text NOT NULL,
    reason       text NOT NULL,
    note         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    created_by   text NOT NULL,
    ended_by     text
);
CREATE INDEX pauses_recipient ON pauses (recipient_id, starts_at);

CREATE TABLE binding_requests (
    request_id   text PRIMARY KEY,
    action       text NOT NULL CHECK (action IN ('bind', 'unbind')),
    device_id    text NOT NULL REFERENCES devices (device_id),
    recipient_id text NOT NULL REFERENCES care_recipients,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    confirmed_by text,
    confirmed_at timestamptz,
    cancelled_at timestamptz
);
CREATE INDEX binding_requests_device ON binding_requests (device_id, requested_at);

CREATE TABLE device_bindings (
    binding_id   text PRIMARY KEY,
    device_id    text NOT NULL REFERENCES devices (device_id),
    recipient_id text NOT NULL REFERENCES care_recipients,
    bound_at     timestamptz NOT NULL,
    requested_by text NOT NULL,
    bound_by     text NOT NULL,
    unbound_at   timestamptz CHECK (unbound_at IS NULL OR unbound_at >= bound_at),
    unbound_by   text
);
CREATE UNIQUE INDEX device_bindings_one_active ON device_bindings (device_id)
    WHERE unbound_at IS NULL;
CREATE INDEX device_bindings_device ON device_bindings (device_id, bound_at DESC);
CREATE INDEX device_bindings_recipient ON device_bindings (recipient_id);

CREATE TABLE behaviour_events (
    event_id     bigserial PRIMARY KEY,
    device_id    text NOT NULL REFERENCES devices (device_id),
    recipient_id text NOT NULL REFERENCES care_recipients,
    event_type   text NOT NULL
                 CHECK (event_type IN ('privacy_switch', 'tamper', 'unplugged', 'covered')),
    at           timestamptz NOT NULL
);
CREATE INDEX behaviour_events_recipient ON behaviour_events (recipient_id, at);

CREATE TABLE suspensions (
    suspension_id text PRIMARY KEY,
    recipient_id  text NOT NULL REFERENCES care_recipients,
    device_id     text NOT NULL REFERENCES devices (device_id),
    event_type    text NOT NULL,
    started_at    timestamptz NOT NULL,
    event_count   integer NOT NULL CHECK (event_count >= 1),
    lifted_at     timestamptz,
    lifted_by     text
);
CREATE UNIQUE INDEX suspensions_one_active ON suspensions (recipient_id) WHERE lifted_at IS NULL;
