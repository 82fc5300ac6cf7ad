"""Composition root, settings, HTTP, signalling, MQTT link and CLI. Nothing imports this."""
