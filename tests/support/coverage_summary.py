"""Print the suite's coverage in a few lines: total, per package, the least covered files.

``python -m tests.support.coverage_summary REPORT.json [--check-floor]`` reads the report of
``coverage json`` (after ``coverage combine``); with ``--check-floor`` it exits 1 when the
total is under ``[tool.coverage.report] fail_under`` of pyproject.toml.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import coverage

LOWEST = 8


def _percent(statements: int, missing: int) -> float:
    return 100.0 * (statements - missing) / statements if statements else 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", type=Path)
    parser.add_argument("--check-floor", action="store_true")
    args = parser.parse_args()
    files: dict[str, dict[str, dict[str, int]]] = json.loads(args.report.read_text())["files"]
    packages: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for path, data in files.items():
        counts = packages[str(Path(path).parent)]
        counts[0] += data["summary"]["num_statements"]
        counts[1] += data["summary"]["missing_lines"]
    statements = sum(s for s, _ in packages.values())
    missing = sum(m for _, m in packages.values())
    total = _percent(statements, missing)
    print(f"coverage: {total:.1f}% of {statements} statements (subprocesses included)")
    for name, (stmts, miss) in sorted(packages.items()):
        print(f"  {name + '/':<18} {_percent(stmts, miss):5.1f}%  ({miss} of {stmts} missed)")
    lowest = sorted(files.items(), key=lambda item: item[1]["summary"]["percent_covered"])
    print("  least covered:")
    for path, data in lowest[:LOWEST]:
        summary = data["summary"]
        print(f"    {summary['percent_covered']:5.1f}%  {path} ({summary['missing_lines']} missed)")
    floor = float(coverage.Coverage().get_option("report:fail_under"))  # type: ignore[arg-type]
    if args.check_floor and total < floor:
        print(f"coverage {total:.1f}% is under the floor of {floor:g}% (pyproject.toml)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
