-- Issue 17: the row-level security policies read the caller's scope once per query, not once
-- per row. 0014's policies call homecare_sees(organisation_id), which parses the setting
-- `homecare.orgs` again for every row; written as scalar subqueries the planner evaluates the
-- scope once (an InitPlan) and compares each row's organisation with an array. Same rule: '*' sees
-- everything, otherwise the listed organisations; unset or empty sees nothing. A team's list of
-- 5,000 brukare went from about 2.5 times the owner's time to about the same (bench.tenancy).
CREATE FUNCTION homecare_all() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('homecare.orgs', true) = '*', false)
$$;

CREATE FUNCTION homecare_orgs() RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_to_array(nullif(current_setting('homecare.orgs', true), ''), ','),
                    '{}'::text[])
$$;

GRANT EXECUTE ON FUNCTION homecare_all(), homecare_orgs() TO homecare_service;

DO $$
DECLARE
    p record;
    once constant text :=
        '((SELECT homecare_all()) OR organisation_id = ANY ((SELECT homecare_orgs())::text[]))';
    new_using text;
    new_check text;
BEGIN
    FOR p IN SELECT schemaname, tablename, policyname, qual, with_check FROM pg_policies
             WHERE schemaname = 'public'
               AND (qual LIKE '%homecare_sees(organisation_id)%'
                    OR with_check LIKE '%homecare_sees(organisation_id)%')
    LOOP
        new_using := replace(p.qual, 'homecare_sees(organisation_id)', once);
        new_check := replace(p.with_check, 'homecare_sees(organisation_id)', once);
        IF new_using IS NOT NULL THEN
            EXECUTE format('ALTER POLICY %I ON %I.%I USING (%s)',
                           p.policyname, p.schemaname, p.tablename, new_using);
        END IF;
        IF new_check IS NOT NULL THEN
            EXECUTE format('ALTER POLICY %I ON %I.%I WITH CHECK (%s)',
                           p.policyname, p.schemaname, p.tablename, new_check);
        END IF;
    END LOOP;
END
$$;
