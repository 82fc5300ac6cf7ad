"""Device registry: the MQTT wire contract, presence, metadata, health, commands and bindings."""
