"""The dependency rules of docs/architecture.md, checked on the source and at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imports(package: str) -> set[tuple[str, str]]:
    """(module file, imported module) for every import in a package."""
    found: set[tuple[str, str]] = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(REPO)), alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(REPO)), node.module))
    return found


def _offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{where} imports {module}"
        for where, module in _imports(package)
        if module.split(".")[0] in forbidden or module.startswith(forbidden)
    )


def test_only_hub_broker_imports_amqtt() -> None:
    offenders = [
        line
        for package in ("hub", "pi_node", "web_bridge")
        for line in _offending(package, ("amqtt",))
        if not line.startswith("hub/broker/")
    ]
    assert offenders == []


def test_only_hub_nats_imports_nats_py_and_nkeys() -> None:
    offenders = [
        line
        for package in ("hub", "pi_node", "web_bridge")
        for line in _offending(package, ("nats", "nkeys"))
        if not line.startswith("hub/nats/")
    ]
    assert offenders == []


def test_protocol_imports_only_pydantic_and_the_stdlib() -> None:
    allowed = {"pydantic", "hub"} | set(sys.stdlib_module_names)
    offenders = [
        f"{where} imports {module}"
        for where, module in _imports("hub/protocol")
        if module.split(".")[0] not in allowed
        or (module.startswith("hub.") and not module.startswith("hub.protocol"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("pi_node", ("hub.state", "hub.broker", "hub.auth", "hub.link", "hub.app")),
        ("web_bridge", ("hub.state", "hub.broker", "hub.link", "hub.app")),
    ],
)
def test_pi_node_and_bridge_stay_off_the_state_and_the_broker(
    package: str, forbidden: tuple[str, ...]
) -> None:
    assert _offending(package, forbidden) == []


def test_the_state_service_runs_without_amqtt() -> None:
    code = (
        "import sys, hub.state.service, hub.link, hub.auth, hub.settings, hub.cli;"
        "assert 'amqtt' not in sys.modules, 'amqtt was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
