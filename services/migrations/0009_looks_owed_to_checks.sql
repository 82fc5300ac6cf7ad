-- Issue 15: every look is owed to a check, and what is documented is what happened.
-- A view session names the check it serves (look = 'check') or is an extra look with a reason
-- code and a note (look = 'extra'); probes and calls may name the check they serve. The device
-- reports at the end what it sent (frames_sent, video_s: the seconds from its first to its last
-- frame); the client reports what it decoded (frames_decoded). No picture is ever stored.
ALTER TABLE signal_sessions
    ADD COLUMN check_id text CHECK (check_id ~ '^[0-9]{8}\.[0-9]{4}\.[a-z0-9-]{1,64}$'),
    ADD COLUMN look text CHECK (look IN ('check', 'extra')),
    ADD COLUMN look_reason text CHECK (look_reason ~ '^[a-z][a-z0-9_]{0,63}$'),
    ADD COLUMN look_note text CHECK (char_length(look_note) <= 500),
    ADD COLUMN frames_sent bigint CHECK (frames_sent >= 0),
    ADD COLUMN video_s double precision CHECK (video_s >= 0),
    ADD COLUMN frames_decoded bigint CHECK (frames_decoded >= 0),
    ADD CONSTRAINT signal_sessions_look_names_why CHECK (
        (look IS DISTINCT FROM 'check' OR check_id IS NOT NULL)
        AND ((look = 'extra') = (look_reason IS NOT NULL AND look_note IS NOT NULL))
    );
CREATE INDEX signal_sessions_check ON signal_sessions (check_id) WHERE check_id IS NOT NULL;
