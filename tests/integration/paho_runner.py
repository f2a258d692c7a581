"""Run the Eclipse Paho MQTT 3.1.1 interoperability client tests, unedited, with a login.

``python tests/integration/paho_runner.py FOLDER PORT RESULTS`` runs ``FOLDER/client_test.py``
as upstream does (``client_test.py --hostname H --port P``), with two things only a runner can
supply: the operator's credentials on every CONNECT (upstream's client takes ``username`` and
``password`` but the tests never pass them), and the list of tests to run. The password comes
from ``TABLEHUB_PAHO_PASSWORD``. Each test's outcome is written to RESULTS as JSON.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import runpy
import sys
import unittest
from pathlib import Path
from typing import Any

APPLICABLE = (  # in upstream's order: unittest's, by name
    "testBasic",
    "test_dollar_topics",
    "test_keepalive",
    "test_offline_message_queueing",
    "test_overlapping_subscriptions",
    "test_redelivery_on_reconnect",
    "test_retained_messages",
    "test_unsubscribe",
    "test_zero_length_clientid",
)
"""The nine tests that apply. Left out: ``test_subscribe_failure``. It needs a topic filter
the broker refuses, but the suite's topics lie outside the topic root, where only operators
may go, and an operator may subscribe to any filter (the hub refuses subscriptions by role,
e.g. a player's ``$SYS/#``: tests/integration/test_acl.py)."""


class _RecordingResult(unittest.TextTestResult):
    """Keeps each test's outcome by name, for the JSON file."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, str] = {}

    def _record(self, test: unittest.TestCase, outcome: str) -> None:
        # a failing setUpClass comes as an _ErrorHolder, named after the class
        self.outcomes[getattr(test, "_testMethodName", str(test))] = outcome

    def addSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802 - unittest's name
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        super().addFailure(test, err)
        self._record(test, "failed")

    def addError(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        super().addError(test, err)
        self._record(test, "error")


def main() -> None:
    folder, port, results = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    script = str(folder / "client_test.py")
    sys.path.insert(0, str(folder))
    client: Any = importlib.import_module("mqtt.clients.V311").Client  # upstream's, from FOLDER
    client.connect = functools.partialmethod(
        client.connect, username="operator", password=os.environ["TABLEHUB_PAHO_PASSWORD"].encode()
    )

    class Runner(unittest.TextTestRunner):
        resultclass = _RecordingResult

        def run(self, test: Any) -> Any:
            result = super().run(test)
            assert isinstance(result, _RecordingResult)
            results.write_text(json.dumps(result.outcomes))
            return result

    # client_test.py reads its options with getopt, then calls unittest.main(), which would
    # read the same argv and refuse them: give unittest its own
    patched: Any = unittest
    patched.main = functools.partial(
        unittest.main,
        argv=[script, "-v", *(f"Test.{name}" for name in APPLICABLE)],
        testRunner=Runner,
    )
    sys.argv = [script, "--hostname", "127.0.0.1", "--port", port]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
