-- Issue 17: least privilege. Staff accounts and API tokens may hold the role auditor (reads the
-- audit log and its extracts, nothing else; kernel/permissions.py is the role matrix).
-- Audited reads (recipient.viewed, check.viewed, report.viewed, audit.read, ...) fold repeated
-- reads of one subject by one actor inside a short window: the fold looks up the actor's last
-- entry of that action and subject, which this index keeps cheap.
ALTER TABLE staff DROP CONSTRAINT staff_role_check,
    ADD CONSTRAINT staff_role_check CHECK (role IN (
        'operator', 'administrator', 'technician', 'patrol', 'shift_lead', 'auditor'));
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check,
    ADD CONSTRAINT api_tokens_role_check CHECK (role IN (
        'operator', 'administrator', 'technician', 'patrol', 'shift_lead', 'auditor'));
CREATE INDEX audit_log_actor_action_subject ON audit_log (actor, action, subject, seq);
