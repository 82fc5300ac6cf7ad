-- Issue 16: escalation that acts. A care plan names, per human step of a check (view, call,
-- patrol acknowledgement, patrol arrival), how long it may wait (respond_s), how often its alarm
-- repeats after that (repeat_s) and when it escalates (escalate_s after the deadline: a view or a
-- call goes to the patrol by itself, a patrol step alerts the shift lead). Plans stored before
-- this get the defaults.
ALTER TABLE care_plans
    ADD COLUMN deadlines jsonb NOT NULL DEFAULT '{
        "view": {"respond_s": 300, "repeat_s": 120, "escalate_s": 300},
        "call": {"respond_s": 300, "repeat_s": 120, "escalate_s": 300},
        "patrol_ack": {"respond_s": 600, "repeat_s": 300, "escalate_s": 600},
        "patrol_arrival": {"respond_s": 2700, "repeat_s": 600, "escalate_s": 900}
    }'::jsonb
        CONSTRAINT care_plans_deadlines_object CHECK (jsonb_typeof(deadlines) = 'object');

-- The watchdog's ladder per check, for the step the check is in (alarmed_version = version):
-- how many alarms it raised (alarm_count), whether it alerted the shift lead (lead_alerted), and
-- when it must look again (next_rung_at: the next alarm or the escalation; NULL: nothing more).
-- A check whose alarmed_version is not its version has not been looked at in this step yet.
ALTER TABLE round_checks
    ADD COLUMN alarm_count integer NOT NULL DEFAULT 0 CHECK (alarm_count >= 0),
    ADD COLUMN lead_alerted boolean NOT NULL DEFAULT false,
    ADD COLUMN next_rung_at timestamptz;
UPDATE round_checks SET alarm_count = 1, next_rung_at = deadline
 WHERE alarmed_version = version AND deadline IS NOT NULL;
CREATE INDEX round_checks_next_rung ON round_checks (next_rung_at) WHERE deadline IS NOT NULL;

-- An alarm repeats: each repetition is its own row (repeat = 1, 2, ...). An escalation (the
-- check sent to the patrol because nobody answered, or a patrol step nobody answered) is a row
-- of kind 'escalation'. Each row says whom it calls: the operators, the patrol or the shift lead.
ALTER TABLE round_alarms
    ADD COLUMN repeat integer NOT NULL DEFAULT 1 CHECK (repeat >= 1),
    ADD COLUMN kind text NOT NULL DEFAULT 'alarm' CHECK (kind IN ('alarm', 'escalation')),
    ADD COLUMN addressed_to text NOT NULL DEFAULT 'operator'
        CHECK (addressed_to IN ('operator', 'patrol', 'shift_lead')),
    DROP CONSTRAINT round_alarms_pkey,
    ADD PRIMARY KEY (check_id, version, kind, repeat);
