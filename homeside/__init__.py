"""The device side of the contract, shared by the simulated homes and the device agent: the MQTT
client (birth, will, meta, health, events, command acks, reconnect), the WebRTC answerer and the
tracks that carry a picture from any frame source."""
