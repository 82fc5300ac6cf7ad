-- Issue 17: the trigger that gives a new row its organisation (0014 homecare_fill_org) looked the
-- organisation up with dynamic SQL, planned anew for every row: about 100 µs an audit entry,
-- inside the audit chain's lock. The same lookups as static queries, whose plans each session
-- keeps; the trigger arguments keep their meaning (triples: table, key column, this row's
-- column), for the tables 0014 names.
CREATE OR REPLACE FUNCTION homecare_fill_org() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    i int := 0;
    row_json jsonb;
    key text;
    found text;
BEGIN
    IF NEW.organisation_id IS NOT NULL THEN
        RETURN NEW;
    END IF;
    row_json := to_jsonb(NEW);
    WHILE i + 2 < TG_NARGS LOOP
        key := row_json ->> TG_ARGV[i + 2];
        IF key IS NOT NULL THEN
            CASE TG_ARGV[i]
                WHEN 'care_recipients' THEN
                    SELECT organisation_id INTO found FROM care_recipients WHERE recipient_id = key;
                WHEN 'round_checks' THEN
                    SELECT organisation_id INTO found FROM round_checks WHERE check_id = key;
                WHEN 'devices' THEN
                    SELECT organisation_id INTO found FROM devices WHERE device_id = key;
                WHEN 'staff' THEN
                    SELECT organisation_id INTO found FROM staff WHERE staff_id = key;
                WHEN 'consents' THEN
                    SELECT organisation_id INTO found FROM consents WHERE consent_id = key;
                ELSE
                    EXECUTE format('SELECT organisation_id FROM %I WHERE %I = $1',
                                   TG_ARGV[i], TG_ARGV[i + 1])
                        INTO found USING key;
            END CASE;
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
