"""Run the ``hub`` command line to completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``hub ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
