-- Issue 18 item 4, hard rule 8: behaviour that counts as a possible withdrawal.
--
-- New behaviour kinds: 'offline_at_check' (a bound camera found offline when the round judged
-- one of its agreed checks; dated at that check's agreed instant, so two in a row can be told
-- apart from two while one check was open) and 'shutter_closed' (a health report's privacy
-- shutter turned closed; a health report's tamper flag turning on is recorded as 'tamper').
ALTER TABLE behaviour_events DROP CONSTRAINT behaviour_events_event_type_check;
ALTER TABLE behaviour_events ADD CONSTRAINT behaviour_events_event_type_check
    CHECK (event_type IN ('privacy_switch', 'tamper', 'unplugged', 'covered',
                          'offline_at_check', 'shutter_closed'));

-- Why camera checks are suspended. Every suspension so far is hard rule 8's possible
-- withdrawal; the column names it, so the console and the extract say so in words.
ALTER TABLE suspensions ADD COLUMN reason text NOT NULL DEFAULT 'possible_withdrawal'
    CHECK (reason IN ('possible_withdrawal'));

-- A re-verification is a record, not a boolean: who (staff) spoke with the brukare and each
-- cohabitant living there, when and how, and each person's answer per purpose. People are
-- named by their pseudonymous ids (the brukare's recipient_id, a cohabitant's cohabitant_id);
-- names stay in care_recipients/cohabitants. outcome: 'lifted' (everyone asked, nobody refused
-- camera checks), 'withdrawn' (someone refused: their consent was withdrawn, supervision ends).
CREATE TABLE reverifications (
    reverification_id text PRIMARY KEY,
    recipient_id      text NOT NULL REFERENCES care_recipients,
    verified_by       text NOT NULL,
    recorded_at       timestamptz NOT NULL,
    people            jsonb NOT NULL CHECK (jsonb_typeof(people) = 'array'),
    outcome           text NOT NULL CHECK (outcome IN ('lifted', 'withdrawn')),
    suspension_ids    text[] NOT NULL DEFAULT '{}',
    withdrawn_consent_ids text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX reverifications_recipient ON reverifications (recipient_id, recorded_at);
ALTER TABLE reverifications ADD COLUMN organisation_id text;
CREATE TRIGGER reverifications_org BEFORE INSERT ON reverifications FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('care_recipients', 'recipient_id', 'recipient_id');
ALTER TABLE reverifications ENABLE ROW LEVEL SECURITY;
CREATE POLICY reverifications_tenant ON reverifications
    USING (homecare_sees(organisation_id)) WITH CHECK (homecare_sees(organisation_id));
