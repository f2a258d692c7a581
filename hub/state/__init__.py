"""The authoritative state: pure game rules (model, reducer, view) and the I/O shell
that runs them (store: the journal on disk; service: MQTT in, MQTT out)."""
