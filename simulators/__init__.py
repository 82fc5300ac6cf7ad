"""Simulated homes: real MQTT clients and aiortc peers speaking the device contract."""
