-- A view's cap is 10..60 s (hard rule 5: default 30, at most 60). Earlier plans allowed 5..300.
-- A plan stored with a longer cap is lowered to 60 s: a shorter look keeps the promise made to
-- the brukare. A cap under 10 s could not show a picture reliably (the first frame can take most
-- of a second) and is raised to 10 s. Checks already planned carry the cap in their policy and
-- are brought into the same range, so a stored night never holds a cap the service refuses.
UPDATE care_plans
   SET view_cap_s = LEAST(GREATEST(view_cap_s, 10), 60)
 WHERE view_cap_s NOT BETWEEN 10 AND 60;

ALTER TABLE care_plans DROP CONSTRAINT IF EXISTS care_plans_view_cap_range;
ALTER TABLE care_plans ADD CONSTRAINT care_plans_view_cap_range
    CHECK (view_cap_s BETWEEN 10 AND 60);

UPDATE round_checks
   SET policy = jsonb_set(
           policy, '{view_cap_s}',
           to_jsonb(LEAST(GREATEST((policy->>'view_cap_s')::int, 10), 60)))
 WHERE (policy->>'view_cap_s')::int NOT BETWEEN 10 AND 60;
