-- Issue 15: views and calls are no longer pruned after a day (probes still are): what a session
-- delivered is what documented a check as seen, and the morning report of any night is built
-- from them. The looks of a night that name no check (extra looks, calls) are found by when
-- they started.
CREATE INDEX signal_sessions_looks_started ON signal_sessions (started_at) WHERE purpose <> 'probe';
