-- Issue 15: calls keep to the agreement. A care plan names its call terms: how long an
-- auto-answered call may last (call_cap_s, default 5 min, 60..900 s; a call the brukare answers
-- by pressing Svara is not capped by the plan), how long such a call is announced on the unit
-- (a chime and the caller's name) before any video flows (announce_s, default 3, 3..15 s), and
-- whether the home's screen shows "Hemtjänsten tittar" with the seconds left during a view
-- (live_countdown, default on). Plans stored before this get the defaults.
ALTER TABLE care_plans
    ADD COLUMN call_cap_s integer NOT NULL DEFAULT 300
        CONSTRAINT care_plans_call_cap_range CHECK (call_cap_s BETWEEN 60 AND 900),
    ADD COLUMN announce_s integer NOT NULL DEFAULT 3
        CONSTRAINT care_plans_announce_range CHECK (announce_s BETWEEN 3 AND 15),
    ADD COLUMN live_countdown boolean NOT NULL DEFAULT true;
