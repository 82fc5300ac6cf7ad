-- Issue 16: roles for the night. Staff accounts and API tokens may hold the roles patrol (the
-- night patrol: its own tasks only) and shift_lead (every alarm, reassigns, gets escalations).
-- A check names who it is assigned to (an operator for a view or call, a patrol for a visit:
-- a staff_id, never a name) and, for a patrol task, when the patrol arrived and what it found.
-- A brukare's home names where its door key or code is kept (a reference, never the code).
ALTER TABLE staff DROP CONSTRAINT staff_role_check,
    ADD CONSTRAINT staff_role_check CHECK (role IN (
        'operator', 'administrator', 'technician', 'patrol', 'shift_lead'));
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check,
    ADD CONSTRAINT api_tokens_role_check CHECK (role IN (
        'operator', 'administrator', 'technician', 'patrol', 'shift_lead'));

ALTER TABLE round_checks
    ADD COLUMN assignee text CHECK (assignee ~ '^[a-z0-9][a-z0-9._:-]{0,127}$'),
    ADD COLUMN assigned_at timestamptz,
    ADD COLUMN patrol_arrived_at timestamptz,
    ADD COLUMN patrol_outcome text CHECK (patrol_outcome IN (
        'found_well', 'helped', 'taken_to_hospital')),
    ADD CONSTRAINT round_checks_assigned_when CHECK ((assignee IS NULL) = (assigned_at IS NULL));
CREATE INDEX round_checks_assignee ON round_checks (assignee) WHERE deadline IS NOT NULL;

ALTER TABLE care_recipients
    ADD COLUMN door_code_ref text NOT NULL DEFAULT ''
        CHECK (char_length(door_code_ref) <= 200);
