-- Issue 17: four eyes, and proof from the device. A binding request names the proof its
-- confirmation needs (proof): a video phone's one-time code ('code': only its hash, salted with
-- the request id, is kept, with when it expires and how many wrong codes were typed), a camera's
-- bind button ('button'), or none (an unbinding; requests stored before this, which can no
-- longer be confirmed as a binding and expire within 15 minutes).
ALTER TABLE binding_requests
    ADD COLUMN proof text NOT NULL DEFAULT 'none' CHECK (proof IN ('none', 'code', 'button')),
    ADD COLUMN code_hash text CHECK (code_hash IS NULL OR code_hash ~ '^[0-9a-f]{64}$'),
    ADD COLUMN code_expires_at timestamptz,
    ADD COLUMN code_attempts integer NOT NULL DEFAULT 0 CHECK (code_attempts >= 0),
    ADD CONSTRAINT binding_requests_code_proof
        CHECK ((proof = 'code') = (code_hash IS NOT NULL AND code_expires_at IS NOT NULL));

-- The latest bind_button event of each device: when the backend received it, nothing else (no
-- picture, no payload). A camera's binding is confirmed only after a press of its own button.
CREATE TABLE device_bind_buttons (
    device_id  text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    pressed_at timestamptz NOT NULL
);
