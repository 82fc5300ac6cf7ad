-- Issue 17: who cares for whom, and tenant isolation in the database.
--
-- Organisation (a municipality or a care provider) -> unit (a district) -> team. Each brukare
-- belongs to one team; staff are employed by one organisation and belong to teams; a night centre
-- covers teams of other organisations by an explicit, dated agreement (team_grants).
--
-- Row-level security: every table holding personal data carries the organisation it belongs to
-- (filled in by a trigger from the brukare, the device, the check or the staff member the row is
-- about, so no INSERT has to name it) and a policy that shows a row only when its organisation is
-- in the caller's scope. The scope is the setting `homecare.orgs`: '*' for the system itself (the
-- round planner, the MQTT link), a comma-separated list of organisation ids for a staff member,
-- and unset (nothing) on any connection that has not been given one. The service's pool switches
-- every connection to the role `homecare_service` (no BYPASSRLS, not the owner of any table) and
-- sets the scope each time a connection is handed out (services/db.py), so a query that forgets a
-- WHERE clause still cannot return another organisation's rows. tests/integration/test_rls.py
-- enumerates the tables from the catalogue: a new table without organisation_id and a policy fails
-- it unless it is listed there as holding no personal data.

DO $$
BEGIN
    CREATE ROLE homecare_service NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;  -- another database of this cluster made it
END
$$;

CREATE TABLE organisations (
    organisation_id text PRIMARY KEY CHECK (organisation_id ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    kind            text NOT NULL CHECK (kind IN ('municipality', 'care_provider')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE units (
    unit_id         text PRIMARY KEY CHECK (unit_id ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    organisation_id text NOT NULL REFERENCES organisations,
    name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (unit_id, organisation_id)
);

CREATE TABLE teams (
    team_id         text PRIMARY KEY CHECK (team_id ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    unit_id         text NOT NULL,
    organisation_id text NOT NULL,
    name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (unit_id, organisation_id) REFERENCES units (unit_id, organisation_id)
);
CREATE INDEX teams_organisation ON teams (organisation_id);

-- One installation that never names an organisation runs as one municipality with one team:
-- every existing brukare and staff member belongs to it.
INSERT INTO organisations (organisation_id, name, kind) VALUES ('default', 'Kommunen', 'municipality');
INSERT INTO units (unit_id, organisation_id, name) VALUES ('default', 'default', 'Hela kommunen');
INSERT INTO teams (team_id, unit_id, organisation_id, name)
    VALUES ('default', 'default', 'default', 'Nattpatrullen');

-- A night centre's team covers another team (of its own or another organisation) from valid_from
-- until valid_until, by a named agreement; revoking ends it at once. Never deleted (audited).
CREATE TABLE team_grants (
    grant_id        text PRIMARY KEY CHECK (grant_id ~ '^grant-[a-z0-9]{6,32}$'),
    team_id         text NOT NULL REFERENCES teams,          -- the team being covered
    grantee_team_id text NOT NULL REFERENCES teams,          -- the night centre's team
    agreement_ref   text NOT NULL CHECK (char_length(agreement_ref) BETWEEN 1 AND 200),
    valid_from      timestamptz NOT NULL,
    valid_until     timestamptz CHECK (valid_until IS NULL OR valid_until > valid_from),
    granted_by      text NOT NULL,
    granted_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_by      text,
    CHECK (team_id <> grantee_team_id),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX team_grants_grantee ON team_grants (grantee_team_id) WHERE revoked_at IS NULL;

-- The one organisation of the caller's scope, for rows created without naming one ('default'
-- for the system or a scope of several organisations).
CREATE FUNCTION homecare_scope_org() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN s IS NULL OR s = '' OR s = '*' OR position(',' IN s) > 0 THEN 'default'
        ELSE s
    END FROM current_setting('homecare.orgs', true) AS s
$$;

-- Does the caller's scope include this organisation? NULL (a row of no organisation) only for the
-- system. Used by every policy below.
CREATE FUNCTION homecare_sees(org text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        current_setting('homecare.orgs', true) = '*'
        OR org = ANY (string_to_array(current_setting('homecare.orgs', true), ',')),
        false)
$$;

ALTER TABLE staff ADD COLUMN organisation_id text NOT NULL DEFAULT homecare_scope_org()
    REFERENCES organisations;
CREATE TABLE staff_teams (
    staff_id text NOT NULL REFERENCES staff ON DELETE CASCADE,
    team_id  text NOT NULL REFERENCES teams,
    added_at timestamptz NOT NULL DEFAULT now(),
    added_by text NOT NULL DEFAULT 'system',
    organisation_id text,
    PRIMARY KEY (staff_id, team_id)
);
CREATE INDEX staff_teams_team ON staff_teams (team_id);
-- Accounts made before organisations existed keep seeing what they saw: the default team.
INSERT INTO staff_teams (staff_id, team_id, organisation_id)
    SELECT staff_id, 'default', 'default' FROM staff;

ALTER TABLE care_recipients
    ADD COLUMN team_id text NOT NULL DEFAULT 'default' REFERENCES teams,
    ADD COLUMN organisation_id text;
UPDATE care_recipients SET organisation_id = 'default';
CREATE INDEX care_recipients_team ON care_recipients (team_id);

-- A brukare's organisation is its team's, always.
-- A brukare moves between teams of one organisation only: the rows about them carry it.
CREATE FUNCTION care_recipients_org() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT organisation_id INTO NEW.organisation_id FROM teams WHERE team_id = NEW.team_id;
    IF TG_OP = 'UPDATE' AND NEW.organisation_id IS DISTINCT FROM OLD.organisation_id THEN
        RAISE EXCEPTION 'a brukare cannot move to a team of another organisation'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER care_recipients_org BEFORE INSERT OR UPDATE OF team_id ON care_recipients
    FOR EACH ROW EXECUTE FUNCTION care_recipients_org();
ALTER TABLE care_recipients ALTER COLUMN organisation_id SET NOT NULL;

-- Where a row's organisation comes from: TG_ARGV holds triples (table, key column, this row's
-- column); the first that finds a row wins. The lookups run as the caller, under the caller's
-- policies: a row about a brukare or device the caller cannot see gets no organisation, and the
-- policy's WITH CHECK then refuses it.
CREATE FUNCTION homecare_fill_org() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    i int := 0;
    key text;
    found text;
BEGIN
    IF NEW.organisation_id IS NOT NULL THEN
        RETURN NEW;
    END IF;
    WHILE i + 2 < TG_NARGS LOOP
        key := to_jsonb(NEW) ->> TG_ARGV[i + 2];
        IF key IS NOT NULL THEN
            EXECUTE format('SELECT organisation_id FROM %I WHERE %I = $1', TG_ARGV[i], TG_ARGV[i + 1])
                INTO found USING key;
            IF found IS NOT NULL THEN
                NEW.organisation_id := found;
                RETURN NEW;
            END IF;
        END IF;
        i := i + 3;
    END LOOP;
    RETURN NEW;
END
$$;

ALTER TABLE devices ADD COLUMN organisation_id text REFERENCES organisations;
UPDATE devices d SET organisation_id = 'default'
    WHERE EXISTS (SELECT 1 FROM device_bindings b WHERE b.device_id = d.device_id);

-- Tables about a brukare.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['cohabitants', 'care_plans', 'consents', 'pauses', 'binding_requests',
                             'device_bindings', 'behaviour_events', 'suspensions', 'round_checks']
    LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN organisation_id text', t);
        EXECUTE format('UPDATE %I SET organisation_id = ''default''', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT ON %I FOR EACH ROW EXECUTE FUNCTION'
                       ' homecare_fill_org(''care_recipients'', ''recipient_id'', ''recipient_id'')',
                       t || '_org', t);
    END LOOP;
END
$$;

-- Round checks also carry the brukare's team, for per-team queues and reports.
ALTER TABLE round_checks ADD COLUMN team_id text;
UPDATE round_checks SET team_id = 'default';
CREATE FUNCTION round_checks_team() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.team_id IS NULL THEN
        SELECT team_id INTO NEW.team_id FROM care_recipients WHERE recipient_id = NEW.recipient_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER round_checks_team BEFORE INSERT ON round_checks
    FOR EACH ROW EXECUTE FUNCTION round_checks_team();
CREATE INDEX round_checks_team ON round_checks (team_id, night);

-- Tables about a check, a consent, a device or a staff member.
ALTER TABLE consent_withdrawals ADD COLUMN organisation_id text;
ALTER TABLE round_transitions ADD COLUMN organisation_id text;
ALTER TABLE round_alarms ADD COLUMN organisation_id text;
ALTER TABLE signal_sessions ADD COLUMN organisation_id text;
ALTER TABLE device_commands ADD COLUMN organisation_id text;
ALTER TABLE camera_zones ADD COLUMN organisation_id text;
ALTER TABLE staff_sessions ADD COLUMN organisation_id text;
ALTER TABLE api_tokens ADD COLUMN organisation_id text;
ALTER TABLE round_duty ADD COLUMN organisation_id text;
ALTER TABLE audit_log ADD COLUMN organisation_id text;
UPDATE consent_withdrawals SET organisation_id = 'default';
UPDATE round_transitions SET organisation_id = 'default';
UPDATE round_alarms SET organisation_id = 'default';
UPDATE signal_sessions SET organisation_id = 'default';
UPDATE device_commands c SET organisation_id = d.organisation_id
    FROM devices d WHERE d.device_id = c.device_id;
UPDATE camera_zones z SET organisation_id = d.organisation_id
    FROM devices d WHERE d.device_id = z.device_id;
UPDATE staff_sessions SET organisation_id = 'default';
UPDATE api_tokens SET organisation_id = 'default';
UPDATE round_duty SET organisation_id = 'default';

CREATE TRIGGER consent_withdrawals_org BEFORE INSERT ON consent_withdrawals FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('consents', 'consent_id', 'consent_id');
CREATE TRIGGER round_transitions_org BEFORE INSERT ON round_transitions FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('round_checks', 'check_id', 'check_id');
CREATE TRIGGER round_alarms_org BEFORE INSERT ON round_alarms FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('round_checks', 'check_id', 'check_id');
CREATE TRIGGER signal_sessions_org BEFORE INSERT ON signal_sessions FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('care_recipients', 'recipient_id', 'recipient_id',
                                       'devices', 'device_id', 'device_id');
CREATE TRIGGER device_commands_org BEFORE INSERT ON device_commands FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('devices', 'device_id', 'device_id');
CREATE TRIGGER camera_zones_org BEFORE INSERT ON camera_zones FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('devices', 'device_id', 'device_id');
CREATE TRIGGER staff_sessions_org BEFORE INSERT ON staff_sessions FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('staff', 'staff_id', 'staff_id');
CREATE TRIGGER api_tokens_org BEFORE INSERT ON api_tokens FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('staff', 'staff_id', 'staff_id');
CREATE TRIGGER staff_teams_org BEFORE INSERT ON staff_teams FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('staff', 'staff_id', 'staff_id');
CREATE TRIGGER round_duty_org BEFORE INSERT ON round_duty FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('staff', 'staff_id', 'staff_id');
-- An audit entry belongs to the organisation of what it is about, else of who did it; an entry
-- of neither (the system's own) is seen by the system only. The column is outside the chained
-- fields: verification does not depend on it.
CREATE TRIGGER audit_log_org BEFORE INSERT ON audit_log FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('care_recipients', 'recipient_id', 'subject',
                                       'round_checks', 'check_id', 'subject',
                                       'devices', 'device_id', 'subject',
                                       'staff', 'staff_id', 'subject',
                                       'staff', 'staff_id', 'actor');

-- A device bound to a brukare joins the brukare's organisation (and stays in its fleet when
-- unbound); a device nobody has bound is in quarantine and belongs to no organisation yet.
-- Binding a device the caller cannot see is refused, although the foreign key would allow it.
CREATE FUNCTION device_bindings_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM devices WHERE device_id = NEW.device_id) THEN
        RAISE EXCEPTION 'device % is not visible to the caller', NEW.device_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_TABLE_NAME = 'device_bindings' THEN
        UPDATE devices SET organisation_id = NEW.organisation_id
            WHERE device_id = NEW.device_id
              AND organisation_id IS DISTINCT FROM NEW.organisation_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER device_bindings_claim AFTER INSERT ON device_bindings
    FOR EACH ROW EXECUTE FUNCTION device_bindings_claim();
CREATE TRIGGER binding_requests_claim AFTER INSERT ON binding_requests
    FOR EACH ROW EXECUTE FUNCTION device_bindings_claim();

-- The head of the audit chain, whatever the caller's scope: appending must link to the newest
-- entry of every organisation. Runs as the owner (who is not subject to the policies).
CREATE FUNCTION audit_head(OUT seq bigint, OUT hash text) LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public AS $$
    SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1
$$;

-- What a staff member may see at a time: the teams they belong to, the teams granted to those,
-- and, for the organisation-wide roles (case officer, technician, auditor), every team of their
-- own organisation; the organisations are those teams' and their own.
CREATE FUNCTION staff_scope(p_staff text, p_role text, p_at timestamptz,
                            OUT orgs text[], OUT teams text[])
    LANGUAGE sql STABLE AS $$
    WITH own AS (SELECT team_id FROM staff_teams WHERE staff_id = p_staff),
    granted AS (
        SELECT g.team_id FROM team_grants g JOIN own ON g.grantee_team_id = own.team_id
         WHERE g.revoked_at IS NULL AND g.valid_from <= p_at
           AND (g.valid_until IS NULL OR g.valid_until > p_at)),
    org_wide AS (
        SELECT t.team_id FROM teams t JOIN staff s ON s.organisation_id = t.organisation_id
         WHERE s.staff_id = p_staff AND p_role IN ('administrator', 'technician', 'auditor')),
    visible AS (SELECT team_id FROM own UNION SELECT team_id FROM granted
                UNION SELECT team_id FROM org_wide)
    SELECT
        ARRAY(SELECT DISTINCT o FROM (
            SELECT t.organisation_id AS o FROM visible v JOIN teams t USING (team_id)
            UNION SELECT s.organisation_id FROM staff s WHERE s.staff_id = p_staff
        ) x ORDER BY o),
        ARRAY(SELECT team_id FROM visible ORDER BY team_id)
$$;

-- The policies. One per table, for every command: a row is seen, changed and written only within
-- the caller's organisations. Quarantined devices (no organisation yet) are seen by everyone who
-- may see devices, so they can be bound. The audit log takes entries from every caller (the chain
-- must be whole) and shows an organisation its own.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['care_recipients', 'cohabitants', 'care_plans', 'consents',
                             'consent_withdrawals', 'pauses', 'binding_requests', 'device_bindings',
                             'behaviour_events', 'suspensions', 'round_checks', 'round_transitions',
                             'round_alarms', 'round_duty', 'signal_sessions', 'staff', 'staff_teams',
                             'staff_sessions', 'api_tokens']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I USING (homecare_sees(organisation_id))'
                       ' WITH CHECK (homecare_sees(organisation_id))', t || '_tenant', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['devices', 'device_commands', 'camera_zones']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I USING'
                       ' (organisation_id IS NULL OR homecare_sees(organisation_id))'
                       ' WITH CHECK (organisation_id IS NULL OR homecare_sees(organisation_id))',
                       t || '_tenant', t);
    END LOOP;
END
$$;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_log_read ON audit_log FOR SELECT USING (homecare_sees(organisation_id));
CREATE POLICY audit_log_append ON audit_log FOR INSERT WITH CHECK (true);

GRANT USAGE ON SCHEMA public TO homecare_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO homecare_service;
REVOKE UPDATE, DELETE ON audit_log FROM homecare_service;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO homecare_service;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO homecare_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO homecare_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO homecare_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO homecare_service;
