-- Issue 13, finding 1: access that ends when it is taken away.
--
-- Every change that takes a credential's right away is announced on the NOTIFY channel
-- "homecare_revocations" by a trigger, so in the same transaction as the change whatever wrote it
-- (the API, the CLI, a hand-made UPDATE). PostgreSQL delivers the notification at commit to every
-- process that LISTENs (identity.revocations), which closes the WebSockets that rode on it.
-- Payload: {"kind", "staff_id", "credential_id"} with pseudonymous ids only (identity.standing).

CREATE FUNCTION revocation_notify(kind text, staff_id text, credential_id text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify(
        'homecare_revocations',
        json_build_object('kind', kind, 'staff_id', staff_id, 'credential_id', credential_id)::text
    );
$$;

CREATE FUNCTION api_tokens_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM revocation_notify('token_revoked', OLD.staff_id, OLD.token_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER api_tokens_revoked AFTER UPDATE OF revoked_at ON api_tokens
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION api_tokens_revocation();
CREATE TRIGGER api_tokens_deleted AFTER DELETE ON api_tokens
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND OLD.expires_at > now())
    EXECUTE FUNCTION api_tokens_revocation();

CREATE FUNCTION staff_sessions_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM revocation_notify('session_ended', OLD.staff_id, OLD.session_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER staff_sessions_ended AFTER UPDATE OF ended_at ON staff_sessions
    FOR EACH ROW WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
    EXECUTE FUNCTION staff_sessions_revocation();
CREATE TRIGGER staff_sessions_deleted AFTER DELETE ON staff_sessions
    FOR EACH ROW WHEN (OLD.ended_at IS NULL AND OLD.expires_at > now())
    EXECUTE FUNCTION staff_sessions_revocation();

CREATE FUNCTION staff_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM revocation_notify('staff_removed', OLD.staff_id, NULL);
    ELSIF OLD.is_active AND NOT NEW.is_active THEN
        PERFORM revocation_notify('staff_deactivated', OLD.staff_id, NULL);
    ELSIF OLD.role IS DISTINCT FROM NEW.role THEN
        PERFORM revocation_notify('role_changed', OLD.staff_id, NULL);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER staff_revoked AFTER UPDATE OF is_active, role OR DELETE ON staff
    FOR EACH ROW EXECUTE FUNCTION staff_revocation();
