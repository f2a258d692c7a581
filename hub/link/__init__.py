"""The state service's MQTT client link to an external broker (Mosquitto, EMQX)."""

from hub.link.mqtt import MqttTransport
from hub.link.url import BrokerUrl, parse_broker_url

__all__ = ["BrokerUrl", "MqttTransport", "parse_broker_url"]
