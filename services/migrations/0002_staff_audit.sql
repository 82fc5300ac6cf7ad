-- Audit log (append-only, SHA-256 hash chain) and staff identity: accounts, sessions, API tokens,
-- login throttling. Staff display names are personal data: only staff_id appears in the audit log.

CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY CHECK (seq >= 1),
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    subject    text,
    data       jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash  text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash       text NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX audit_log_subject ON audit_log (subject, seq) WHERE subject IS NOT NULL;
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;

CREATE TABLE staff (
    staff_id            text PRIMARY KEY CHECK (staff_id ~ '^staff-[a-z0-9]{6,32}$'),
    username            text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    display_name        text,
    role                text NOT NULL CHECK (role IN ('operator', 'administrator', 'technician')),
    password_hash       text,
    is_active           boolean NOT NULL DEFAULT true,
    is_service          boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL,
    password_changed_at timestamptz
);

CREATE TABLE staff_sessions (
    session_id   text PRIMARY KEY,
    secret_hash  text NOT NULL UNIQUE,
    staff_id     text NOT NULL REFERENCES staff (staff_id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz
);
CREATE INDEX staff_sessions_staff ON staff_sessions (staff_id);
CREATE INDEX staff_sessions_expires ON staff_sessions (expires_at);

CREATE TABLE api_tokens (
    token_id     text PRIMARY KEY,
    secret_hash  text NOT NULL UNIQUE,
    staff_id     text NOT NULL REFERENCES staff (staff_id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('operator', 'administrator', 'technician')),
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_staff ON api_tokens (staff_id);

-- Keyed by SHA-256 of the normalised username, so a password typed into the username field is
-- never stored; rows exist for unknown usernames too, so lockout reveals nothing.
CREATE TABLE login_throttle (
    username_key  text PRIMARY KEY CHECK (username_key ~ '^[0-9a-f]{64}$'),
    failures      integer NOT NULL CHECK (failures >= 0),
    window_start  timestamptz NOT NULL,
    locked_until  timestamptz
);
CREATE INDEX login_throttle_window ON login_throttle (window_start);
