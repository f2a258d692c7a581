"""The composition root of ``pi-node``: settings in, a running node until ``stop`` is set.

Lifecycles nest in an ExitStack, so they end in reverse: the link first (retained
``offline``, clean DISCONNECT), then the screen, the hardware and the systemd notifier.
Everything outside the event loop (paho's thread, gpiozero's threads) reaches the node
only through its inbox, with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from contextlib import ExitStack, suppress

from hub.protocol import DecodeError
from pi_node.cache import SnapshotCache
from pi_node.hardware import ButtonAction, GpioHardware, Hardware, NoHardware
from pi_node.link import Backoff, Link, LinkEvent, LinkOptions
from pi_node.node import Node, NodeInput, Pressed, Redraw, Tick
from pi_node.screen import NoScreen, Screen, TerminalScreen, configured_target
from pi_node.sdnotify import Notifier
from pi_node.settings import PiNodeSettings
from pi_node.wire import Subscriptions

__all__ = ["choose_hardware", "choose_screen", "link_options", "run"]

_LOGGER = logging.getLogger(__name__)
TICK_SECONDS = 1.0
INBOX_LIMIT = 10_000


def choose_hardware(settings: PiNodeSettings) -> Hardware:
    if settings.gpio == "none":
        return NoHardware()
    if settings.gpio == "mock":
        from gpiozero.pins.mock import MockFactory  # noqa: PLC0415 - only when asked for

        return GpioHardware(settings.pins, MockFactory())
    return GpioHardware(settings.pins, optional=True)


def choose_screen(settings: PiNodeSettings) -> Screen:
    target = configured_target(settings.screen)
    return NoScreen() if target is None else TerminalScreen(target)


def link_options(settings: PiNodeSettings, subs: Subscriptions) -> LinkOptions:
    address = settings.broker_address
    return LinkOptions(
        host=address.host,
        port=address.port,
        username=settings.identity,
        password=settings.secret,
        presence_topic=subs.presence,
        subscriptions=subs.filters,
        keepalive=settings.keepalive,
        backoff=Backoff(settings.reconnect_min, settings.reconnect_max),
    )


async def run(
    settings: PiNodeSettings,
    stop: asyncio.Event,
    *,
    hardware: Hardware | None = None,
    screen: Screen | None = None,
    notifier: Notifier | None = None,
    on_node: asyncio.Future[Node] | None = None,
) -> None:
    """Run the node until ``stop`` is set; ``on_node`` receives the node once it runs."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[NodeInput] = asyncio.Queue(INBOX_LIMIT)

    def put(item: NodeInput) -> None:  # on the loop
        try:
            inbox.put_nowait(item)
        except asyncio.QueueFull:
            _LOGGER.warning("inbox full: dropped a %s", type(item).__name__)

    def deliver(item: LinkEvent | Pressed) -> None:  # from any thread
        with suppress(RuntimeError):  # the loop is closed: we are shutting down
            loop.call_soon_threadsafe(put, item)

    def pressed(action: ButtonAction) -> None:  # on gpiozero's thread
        deliver(Pressed(action))

    topics = settings.topics
    subs = Subscriptions.of(topics, settings.game, settings.identity)
    with ExitStack() as stack:
        notify = stack.enter_context(notifier or Notifier.from_env())
        table = stack.enter_context(hardware or choose_hardware(settings))
        shown = stack.enter_context(screen or choose_screen(settings))
        link = Link(link_options(settings, subs), deliver)
        node = Node(
            game=settings.game,
            identity=settings.identity,
            subs=subs,
            command_topic=topics.game_command(settings.game, settings.identity),
            join_link=settings.join_link,
            outbox=link,
            hardware=table,
            screen=shown,
            cache=SnapshotCache(settings.cache_path),
            notifier=notify,
        )
        node.start()
        stack.enter_context(link)
        table.listen(pressed)
        _LOGGER.info(
            "pi-node running: game %s on %s as %s",
            settings.game,
            settings.broker_address,
            settings.identity,
        )
        if threading.current_thread() is threading.main_thread():  # signals reach only it
            loop.add_signal_handler(signal.SIGWINCH, put, Redraw())
            stack.callback(loop.remove_signal_handler, signal.SIGWINCH)
        notify.ready(node.status_line)
        if on_node is not None:
            on_node.set_result(node)
        await _serve(node, inbox, stop, notify)
        _LOGGER.info("stopping")
        notify.stopping()


async def _serve(
    node: Node, inbox: asyncio.Queue[NodeInput], stop: asyncio.Event, notify: Notifier
) -> None:
    """Feed the inbox to the node, one input at a time, until ``stop``."""
    stopped = asyncio.create_task(stop.wait())
    next_tick = next_ping = time.monotonic()
    try:
        while not stop.is_set():
            getter = asyncio.create_task(inbox.get())
            done, _ = await asyncio.wait(
                {getter, stopped},
                timeout=max(0.01, next_tick - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if getter in done:
                await _handle(node, getter.result())
            else:
                getter.cancel()
            now = time.monotonic()
            if now >= next_tick:
                await _handle(node, Tick())
                next_tick = now + TICK_SECONDS
            if notify.watchdog_interval is not None and now >= next_ping:
                notify.watchdog()
                next_ping = now + notify.watchdog_interval
    finally:
        stopped.cancel()


async def _handle(node: Node, item: NodeInput) -> None:
    try:
        await node.handle(item)
    except DecodeError as exc:
        _LOGGER.warning("ignored a malformed message: %s", exc.message)
    except Exception:  # one guard per input: log it, keep running
        _LOGGER.exception("error while handling %s", type(item).__name__)
