-- Issue 17: a device's bind-button presses (0015) are about a home: they carry the device's
-- organisation and the same policy as the device's other rows (0014).
ALTER TABLE device_bind_buttons ADD COLUMN organisation_id text;
UPDATE device_bind_buttons b SET organisation_id = d.organisation_id
    FROM devices d WHERE d.device_id = b.device_id;
CREATE TRIGGER device_bind_buttons_org BEFORE INSERT ON device_bind_buttons FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('devices', 'device_id', 'device_id');
ALTER TABLE device_bind_buttons ENABLE ROW LEVEL SECURITY;
CREATE POLICY device_bind_buttons_tenant ON device_bind_buttons
    USING (organisation_id IS NULL OR homecare_sees(organisation_id))
    WITH CHECK (organisation_id IS NULL OR homecare_sees(organisation_id));
