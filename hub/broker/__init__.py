"""The embedded MQTT broker: everything that touches amqtt lives in this package."""

from hub.broker.errors import BrokerError
from hub.broker.server import BrokerOptions, EmbeddedBroker
from hub.broker.transport import EmbeddedTransport

__all__ = ["BrokerError", "BrokerOptions", "EmbeddedBroker", "EmbeddedTransport"]
