"""tablehub: an MQTT state hub for a two-player, turn-based party game."""

__version__ = "0.1.0"
