-- Camera zones: where the bed, the floor and the door are in each camera's view, as polygons in
-- the coordinates of a reference picture (ref_width x ref_height pixels; the motion probe scales
-- them to the stream it receives). Numbers only: never a picture of the room.
CREATE TABLE camera_zones (
    device_id   text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    ref_width   integer NOT NULL CHECK (ref_width BETWEEN 16 AND 8192),
    ref_height  integer NOT NULL CHECK (ref_height BETWEEN 16 AND 8192),
    -- [{"name": "bed"|"floor"|"door", "polygon": [[x, y], ...]}, ...]
    zones       jsonb NOT NULL CHECK (jsonb_typeof(zones) = 'array'),
    updated_at  timestamptz NOT NULL,
    updated_by  text NOT NULL
);

-- The motion check's numbers behind a verdict, stored with the transition that applied it
-- (probing -> cleared / needs_view / patrol): {"verdict", "confidence", "reason", "numbers": {..}}.
ALTER TABLE round_transitions ADD COLUMN verdict_detail jsonb
    CHECK (verdict_detail IS NULL OR jsonb_typeof(verdict_detail) = 'object');
