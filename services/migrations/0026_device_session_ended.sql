-- A device's own offline or stopped ends its session: with device messages shared between
-- processes (a shared subscription), a late online of the same session must not bring it back.
-- An offline set by the backend's sweep (the device was silent after a reconnect) leaves it false,
-- so the device's own re-announce of that session still counts.
ALTER TABLE devices ADD COLUMN session_ended boolean NOT NULL DEFAULT false;
