-- Issue 17: an operator on duty covers one or more teams. Going on duty may name the teams
-- (some of the operator's own); NULL is every team the operator covers whenever asked (rows
-- written before this migration, and a duty that named none). The queue shows, per operator on
-- duty, the teams covered (supervision.store.RoundStore.duty_teams).
ALTER TABLE round_duty ADD COLUMN teams text[]
    CHECK (teams IS NULL OR cardinality(teams) BETWEEN 1 AND 100);
