"""The table's buttons and LEDs, behind a small Protocol.

``GpioHardware`` drives real pins through gpiozero (or gpiozero's mock pins, for a laptop
and the tests); ``NoHardware`` is for a machine without any; ``FakeHardware`` records what
it is told and presses buttons on request, for tests of the node without pins.

Button callbacks run on gpiozero's threads: ``on_press`` must be thread-safe (the node's
hands the press over to its event loop and returns).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self

from pi_node.settings import Pins

__all__ = [
    "ButtonAction",
    "FakeHardware",
    "GpioHardware",
    "Hardware",
    "Light",
    "NoHardware",
    "OnPress",
    "TurnLights",
]

_LOGGER = logging.getLogger(__name__)


class ButtonAction(StrEnum):
    START_NEXT = "start_next"
    """Start a game (not started or finished), or resume a paused one."""
    PAUSE = "pause"
    """Pause a game in progress."""


class Light(StrEnum):
    OFF = "off"
    ON = "on"
    BLINK = "blink"


TurnLights = tuple[Light, Light]
"""The LEDs of seat 1 and seat 2."""
OnPress = Callable[[ButtonAction], None]


class Hardware(Protocol):
    """What the node needs from the table: button presses in, turn lights out."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def listen(self, on_press: OnPress) -> None:
        """Call ``on_press`` (from any thread) for every button press from now on."""

    def show(self, lights: TurnLights) -> None:
        """Set the seat LEDs."""


class _Base:
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class NoHardware(_Base):
    """No buttons, no LEDs."""

    def listen(self, on_press: OnPress) -> None:
        return None

    def show(self, lights: TurnLights) -> None:
        return None


class FakeHardware(_Base):
    """Records the lights; ``press(action)`` calls the listener as a button would."""

    def __init__(self) -> None:
        self.lights: TurnLights = (Light.OFF, Light.OFF)
        self._on_press: OnPress | None = None

    def listen(self, on_press: OnPress) -> None:
        self._on_press = on_press

    def show(self, lights: TurnLights) -> None:
        self.lights = lights

    def press(self, action: ButtonAction) -> None:
        if self._on_press is not None:
            self._on_press(action)


class GpioHardware(_Base):
    """gpiozero buttons ("start/next", "pause") and the two seat LEDs.

    ``pin_factory`` None uses gpiozero's default (the Pi's GPIO); pass
    ``gpiozero.pins.mock.MockFactory()`` to run on mock pins. With ``optional`` true, a
    machine without usable GPIO runs on without buttons and LEDs (logged) instead of failing.
    """

    def __init__(self, pins: Pins, pin_factory: Any = None, *, optional: bool = False) -> None:
        self.pins = pins
        self.pin_factory = pin_factory
        self.optional = optional
        self._devices: list[Any] = []
        self._leds: tuple[Any, Any] | None = None
        self._buttons: dict[ButtonAction, Any] = {}
        self._lights: TurnLights | None = None
        self._on_press: OnPress | None = None

    @property
    def active(self) -> bool:
        """True when the pins are driven (False before enter, or when GPIO was missing)."""
        return self._leds is not None

    def __enter__(self) -> Self:
        from gpiozero import LED, Button  # noqa: PLC0415 - only where GPIO is wanted
        from gpiozero.exc import GPIOZeroError, PinFactoryFallback  # noqa: PLC0415

        pins = self.pins
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PinFactoryFallback)  # the search for a factory
                for action, pin in (
                    (ButtonAction.START_NEXT, pins.start),
                    (ButtonAction.PAUSE, pins.pause),
                ):
                    button = Button(
                        pin,
                        pull_up=pins.pull_up,
                        bounce_time=pins.bounce_time or None,
                        pin_factory=self.pin_factory,
                    )
                    self._devices.append(button)
                    self._buttons[action] = button
                led1 = LED(pins.led_seat1, pin_factory=self.pin_factory)
                self._devices.append(led1)
                led2 = LED(pins.led_seat2, pin_factory=self.pin_factory)
                self._devices.append(led2)
        except (GPIOZeroError, OSError) as exc:  # BadPinFactory is an ImportError subclass
            self._close_devices()
            if not self.optional:
                raise
            _LOGGER.warning("no usable GPIO (%s): running without buttons and LEDs", exc)
            return self
        self._leds = (led1, led2)
        for action, button in self._buttons.items():
            button.when_pressed = self._callback(action)
        _LOGGER.info(
            "GPIO ready: start/next on %s, pause on %s, LEDs on %s and %s",
            pins.start,
            pins.pause,
            pins.led_seat1,
            pins.led_seat2,
        )
        return self

    def _callback(self, action: ButtonAction) -> Callable[[], None]:
        def pressed() -> None:
            if self._on_press is not None:
                self._on_press(action)

        return pressed

    def listen(self, on_press: OnPress) -> None:
        self._on_press = on_press

    def show(self, lights: TurnLights) -> None:
        if self._leds is None or lights == self._lights:
            return
        self._lights = lights
        for led, light in zip(self._leds, lights, strict=True):
            if light is Light.ON:
                led.on()
            elif light is Light.BLINK:
                led.blink(on_time=0.5, off_time=0.5)
            else:
                led.off()

    def _close_devices(self) -> None:
        for device in reversed(self._devices):
            device.close()
        self._devices.clear()
        self._buttons.clear()
        self._leds = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._on_press = None
        self._close_devices()
