"""The Pi node: the daemon on the Raspberry Pi at the table.

It follows one game straight over MQTT (paho-mqtt, no web bridge) and shows it full-screen
on the console/HDMI; its buttons send commands and its LEDs show whose turn it is. It
imports only ``hub.protocol`` from the hub.

    settings.py  one typed settings object (CLI > PI_NODE_* env > TOML > defaults)
    wire.py      the topics it follows; bytes -> frozen models, once, at the edge
    link.py      the paho adapter: connect, reconnect forever, callbacks only enqueue
    node.py      state -> screen/LEDs, buttons -> commands (decisions are pure functions)
    render.py    pure: a TableView -> a rich renderable, or plain text
    screen.py    where the view is drawn (a terminal, a tty device, nowhere)
    hardware.py  the buttons/LEDs Protocol: gpiozero, none, and a fake
    cache.py     the last known game on disk, shown stale after a reboot
    sdnotify.py  systemd's READY/STATUS/WATCHDOG/STOPPING
    app.py       the composition root; __main__.py the command line
"""
