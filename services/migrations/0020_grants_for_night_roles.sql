-- Issue 17: a night centre's grant lets its night staff (operator, patrol, shift lead) see the
-- granted teams; it gives nothing to the organisation-wide roles (case officer, technician,
-- auditor), who keep to their own organisation even when they are members of a grantee team.
-- (0014 let a grant widen any member's scope, so a night centre's administrator saw the granting
-- organisation's staff and brukare lists.)
CREATE OR REPLACE FUNCTION staff_scope(p_staff text, p_role text, p_at timestamptz,
                                       OUT orgs text[], OUT teams text[])
    LANGUAGE sql STABLE AS $$
    WITH own AS (SELECT team_id FROM staff_teams WHERE staff_id = p_staff),
    granted AS (
        SELECT g.team_id FROM team_grants g JOIN own ON g.grantee_team_id = own.team_id
         WHERE p_role IN ('operator', 'patrol', 'shift_lead')
           AND g.revoked_at IS NULL AND g.valid_from <= p_at
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
