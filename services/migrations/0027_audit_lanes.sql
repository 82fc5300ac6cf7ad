-- Issue 21: the audit log in lanes. One advisory lock over the whole chain, held through every
-- audited transaction's COMMIT, serialised every audited write of the service. New entries go to
-- one of several chains ("lanes", kernel/audit/chain.py): each lane has its own lock, head and
-- lane_seq (from 1, no gaps); seq stays the unique id, now from a sequence. The entries written
-- before this migration keep lane and lane_seq NULL and their hash form: they are lane 0's
-- beginning (their lane seq is their seq), and lane 0's first laned entry links to the last of
-- them. No landed row is changed (the table stays append-only: its triggers are untouched).
ALTER TABLE audit_log ADD COLUMN lane smallint, ADD COLUMN lane_seq bigint;
-- Every new entry is laned; checked for new rows only (NOT VALID), so the old ones stay as they are.
ALTER TABLE audit_log ADD CONSTRAINT audit_log_laned
    CHECK (lane IS NOT NULL AND lane BETWEEN 0 AND 255 AND lane_seq >= 1) NOT VALID;
-- One entry per place in a lane: a writer that did not hold its lane's lock cannot fork it.
CREATE UNIQUE INDEX audit_log_lane_seq ON audit_log (lane, lane_seq) WHERE lane IS NOT NULL;
CREATE INDEX audit_log_before_lanes ON audit_log (seq) WHERE lane IS NULL;

CREATE SEQUENCE audit_log_seq OWNED BY audit_log.seq;
SELECT setval('audit_log_seq', coalesce((SELECT max(seq) FROM audit_log), 0) + 1, false);

-- A lane's last entry (lane_seq, hash), whatever the caller's scope; (0, genesis) when empty.
CREATE FUNCTION audit_lane_head(p_lane int, OUT lane_seq bigint, OUT hash text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    SELECT a.lane_seq, a.hash INTO lane_seq, hash FROM audit_log a
        WHERE a.lane = p_lane ORDER BY a.lane_seq DESC LIMIT 1;
    IF lane_seq IS NULL AND p_lane = 0 THEN
        SELECT a.seq, a.hash INTO lane_seq, hash FROM audit_log a
            WHERE a.lane IS NULL ORDER BY a.seq DESC LIMIT 1;
    END IF;
    IF lane_seq IS NULL THEN
        lane_seq := 0;
        hash := repeat('0', 64);
    END IF;
END
$$;

-- Every lane's head in one snapshot (what an anchor signs): lane 0 always, the others when they
-- hold an entry.
CREATE FUNCTION audit_heads() RETURNS TABLE (lane int, lane_seq bigint, hash text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT l, h.lane_seq, h.hash FROM generate_series(0, 255) AS l, audit_lane_head(l) h
    WHERE l = 0 OR h.lane_seq > 0
$$;

-- Enter a lane to append p_count entries: the transaction's lane if it already appended (a
-- transaction holds one lane's lock at most, so two can never wait for each other's lanes),
-- else p_lane, whose lock is taken here until the transaction ends. Returns the lane, its head
-- and p_count new ids.
CREATE FUNCTION audit_lane_enter(p_lane int, p_count int,
    OUT lane int, OUT lane_seq bigint, OUT hash text, OUT seqs bigint[])
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public AS $$
DECLARE
    held text := current_setting('homecare.audit_lane', true);
BEGIN
    IF p_lane IS NULL OR p_lane < 0 OR p_lane > 255 OR p_count IS NULL OR p_count < 1 THEN
        RAISE EXCEPTION 'audit_lane_enter: lane % or count % out of range', p_lane, p_count
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    IF held IS NULL OR held = '' THEN
        lane := p_lane;
        PERFORM pg_advisory_xact_lock(1751343477, lane);  -- 'hcau', one key per lane
        PERFORM set_config('homecare.audit_lane', lane::text, true);
    ELSE
        lane := held::int;
    END IF;
    SELECT h.lane_seq, h.hash INTO lane_seq, hash FROM audit_lane_head(lane) h;
    seqs := ARRAY(SELECT nextval('audit_log_seq') FROM generate_series(1, p_count));
END
$$;
REVOKE ALL ON FUNCTION audit_lane_enter(int, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_lane_enter(int, int) TO homecare_service;
