"""The state service's MQTT client link to an external broker (Mosquitto, EMQX)."""

from hub.link.mqtt import MqttTransport

__all__ = ["MqttTransport"]
