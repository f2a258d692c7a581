"""The Eclipse Paho MQTT 3.1.1 interoperability client tests against the embedded broker.

They live, unedited and with their licence, in ``../shared/paho-interop`` next to the
checkout (CI has it); ``paho_runner.py`` runs them with the operator's login.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.paho_runner import APPLICABLE
from tests.support.hub import REPO, HubProcess, password_of

PAHO = REPO.parent / "shared" / "paho-interop"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_paho_interoperability_suite(data_dir: Path, tmp_path: Path) -> None:
    if not (PAHO / "client_test.py").is_file():
        pytest.skip(f"the Paho interoperability tests are not at {PAHO} (CI has them)")
    results = tmp_path / "paho.json"
    # the suite counts every message on "+/+" (its own topics have two levels): a two-level
    # root keeps the hub's status and stats (three levels) out of its counts
    with HubProcess(data_dir, "--topic-root", "interop/tablehub") as hub:
        # upstream's client gives every CONNACK 0.5 s (settimeout in mqtt/clients/V311/
        # main.py); the operator's first login pays the argon2 check, later ones the
        # hub's cache: log in once first, so a loaded machine does not fail the suite
        with hub.client("operator"):
            pass
        run = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).with_name("paho_runner.py")),
                str(PAHO),
                str(hub.mqtt_port),
                str(results),
            ],
            cwd=tmp_path,
            env={**os.environ, "TABLEHUB_PAHO_PASSWORD": password_of(hub, "operator")},
            capture_output=True,
            text=True,
            timeout=200,
            check=False,
        )
    output = f"{run.stdout}\n{run.stderr}"
    outcomes = json.loads(results.read_text()) if results.exists() else {}
    passed = sorted(name for name, outcome in outcomes.items() if outcome == "passed")
    print(f"Paho interoperability: {len(passed)}/{len(APPLICABLE)} applicable tests passed")
    assert passed == sorted(APPLICABLE), f"{outcomes}\n{output[-6000:]}"
    assert run.returncode == 0, output[-6000:]
