"""Medians and embedded ÷ Mosquitto-backed ratios from ``storm --json`` result lines.

    .venv/bin/python -m bench.broker_profile.ratios RESULTS.jsonl

Run the two brokers interleaved (embedded, mosquitto, embedded, ...) into one file: the
machine is shared, so only figures from the same period compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def table(path: Path) -> str:
    cells: dict[tuple[str, int, int, str], list[float]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        result = json.loads(line)
        key = (result["transport"], result["qos"], result["n"], result["broker"])
        cells[key].append(result["cpu_ms_per_command"])
    rows = [
        "| transport | QoS | N | embedded ms/cmd | Mosquitto-backed ms/cmd | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for transport, qos, n in sorted({k[:3] for k in cells}):
        embedded = cells.get((transport, qos, n, "embedded"), [])
        backed = cells.get((transport, qos, n, "mosquitto"), [])

        def show(values: list[float]) -> str:
            if not values:
                return "-"
            return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"

        ratio = (
            f"{statistics.median(embedded) / statistics.median(backed):.2f}x"
            if embedded and backed
            else "-"
        )
        rows.append(f"| {transport} | {qos} | {n} | {show(embedded)} | {show(backed)} | {ratio} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    print(table(parser.parse_args().results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
