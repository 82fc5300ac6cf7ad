-- Issue 18, item 2: a brukare's service ends, and after the retention period their personal data
-- is erased while the pseudonymous records (checks, looks, the audit chain) stay and still add up.
--
-- care_recipients.ended_at / end_reason / ended_by: when and why the service ended (discharged,
-- deceased, moved; POST /api/recipients/{id}/end). erased_at: when erase_recipient() blanked
-- their personal data (the retention job, services/retention.py).
--
-- The append-only triggers of consents and consent_withdrawals refuse every UPDATE, which made a
-- lawful erasure impossible. They now let one kind of UPDATE through: one that changes nothing
-- but the free-text columns, made inside erase_recipient() (SECURITY DEFINER, owned by the schema
-- owner), which sets the transaction-local flag homecare.erasing. The flag alone is not enough:
-- the service's role (homecare_service) could set it too, so the trigger also requires that the
-- statement runs as someone other than homecare_service, which inside the function is the owner.
-- The audit log keeps its triggers: its chained payload holds pseudonymous ids, codes and
-- instants only (kernel/audit/chain.py refuses names and notes), so erasing the name and the
-- home here makes its entries about this brukare non-personal without touching the chain.

ALTER TABLE care_recipients
    ADD COLUMN ended_at timestamptz,
    ADD COLUMN end_reason text CHECK (end_reason IN ('discharged', 'deceased', 'moved')),
    ADD COLUMN ended_by text,
    ADD COLUMN erased_at timestamptz,
    ADD CONSTRAINT care_recipients_end_whole
        CHECK ((ended_at IS NULL) = (end_reason IS NULL) AND (ended_at IS NULL) = (ended_by IS NULL)),
    ADD CONSTRAINT care_recipients_erased_after_end
        CHECK (erased_at IS NULL OR ended_at IS NOT NULL);
CREATE INDEX care_recipients_to_erase ON care_recipients (ended_at)
    WHERE ended_at IS NOT NULL AND erased_at IS NULL;

-- Indexes the retention job's batches select by.
CREATE INDEX IF NOT EXISTS signal_sessions_ended ON signal_sessions (ended_at);
CREATE INDEX IF NOT EXISTS device_commands_sent ON device_commands (sent_at);

CREATE OR REPLACE FUNCTION consent_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND coalesce(current_setting('homecare.erasing', true), '') = 'on'
       AND current_user <> 'homecare_service'
       AND (
           (TG_TABLE_NAME = 'consents'
            AND to_jsonb(NEW) - ARRAY['basis_ref', 'informed_by', 'informed_how', 'document_ref']
                = to_jsonb(OLD) - ARRAY['basis_ref', 'informed_by', 'informed_how', 'document_ref'])
           OR (TG_TABLE_NAME = 'consent_withdrawals'
               AND to_jsonb(NEW) - 'reason' = to_jsonb(OLD) - 'reason')
       ) THEN
        RETURN NEW;  -- erase_recipient() blanking free text, nothing else
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Erase one ended brukare's personal data; returns the rows changed per table (numbers only).
-- Refuses a brukare whose service has not ended or whom the caller's scope does not show.
-- Idempotent: erasing again changes nothing more and keeps the first erased_at.
CREATE FUNCTION erase_recipient(p_recipient text, p_at timestamptz) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    counts jsonb := '{}'::jsonb;
    n integer;
    devs text[];
BEGIN
    PERFORM 1 FROM care_recipients
     WHERE recipient_id = p_recipient AND ended_at IS NOT NULL AND homecare_sees(organisation_id)
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'brukare % is unknown or their service has not ended', p_recipient
            USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config('homecare.erasing', 'on', true);

    UPDATE care_recipients
       SET display_name = recipient_id, home = '', door_code_ref = '',
           erased_at = coalesce(erased_at, p_at)
     WHERE recipient_id = p_recipient;
    UPDATE cohabitants SET display_name = cohabitant_id
     WHERE recipient_id = p_recipient AND display_name <> cohabitant_id;
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('cohabitants', n);
    UPDATE care_plans SET instruction = '', decision_ref = '-'
     WHERE recipient_id = p_recipient AND (instruction <> '' OR decision_ref <> '-');
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('care_plans', n);
    UPDATE consents
       SET basis_ref = NULL, informed_by = NULL, informed_how = NULL, document_ref = NULL
     WHERE recipient_id = p_recipient
       AND (basis_ref IS NOT NULL OR informed_by IS NOT NULL OR informed_how IS NOT NULL
            OR document_ref IS NOT NULL);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('consents', n);
    UPDATE consent_withdrawals w SET reason = NULL
      FROM consents c
     WHERE c.consent_id = w.consent_id AND c.recipient_id = p_recipient AND w.reason IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('consent_withdrawals', n);
    UPDATE pauses SET note = '' WHERE recipient_id = p_recipient AND note <> '';
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('pauses', n);
    UPDATE round_transitions SET note = NULL
     WHERE note IS NOT NULL
       AND check_id IN (SELECT check_id FROM round_checks WHERE recipient_id = p_recipient);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('round_transitions', n);
    UPDATE signal_sessions SET look_note = ''
     WHERE look_note IS NOT NULL AND look_note <> ''
       AND (recipient_id = p_recipient
            OR check_id IN (SELECT check_id FROM round_checks WHERE recipient_id = p_recipient));
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('signal_sessions', n);
    -- Zones drawn for the brukare's room, on devices nobody else has been bound to since.
    devs := ARRAY(SELECT DISTINCT device_id FROM device_bindings WHERE recipient_id = p_recipient);
    DELETE FROM camera_zones z
     WHERE z.device_id = ANY (devs)
       AND NOT EXISTS (SELECT 1 FROM device_bindings b
                        WHERE b.device_id = z.device_id AND b.recipient_id <> p_recipient
                          AND b.bound_at > (SELECT max(bound_at) FROM device_bindings
                                             WHERE device_id = z.device_id
                                               AND recipient_id = p_recipient));
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('camera_zones', n);

    PERFORM set_config('homecare.erasing', 'off', true);
    RETURN counts;
END
$$;
REVOKE ALL ON FUNCTION erase_recipient(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erase_recipient(text, timestamptz) TO homecare_service;
