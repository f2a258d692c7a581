"""``python -m bench``: run the workloads, print a Markdown table, write the results.

    python -m bench                       # everything, 3 repeats (about 19 minutes here)
    python -m bench --quick               # small sizes, 1 repeat (about 2.5 minutes)
    python -m bench --workloads storm,subs --targets hub,hub+mosquitto

Writes ``bench/results/<UTC timestamp>.json`` (every point, the summary, the machine) and
``bench/results/latest.md`` (the tables). All servers and clients run on 127.0.0.1 on
ephemeral ports, in a temporary directory that is removed afterwards (``--keep`` keeps it,
with the servers' logs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.report import markdown, summarize, summary_json
from bench.targets import REPO, TargetName
from bench.workloads import WORKLOADS, Plan, Recorder

__all__ = ["main"]

RESULTS = REPO / "bench" / "results"
ALL_TARGETS: tuple[TargetName, ...] = ("hub", "hub+mosquitto", "hub+nats", "hub+nats3", "socketio")
_PACKAGES = (
    "amqtt",
    "paho-mqtt",
    "fastapi",
    "uvicorn",
    "flask-socketio",
    "python-socketio",
    "gevent",
    "gevent-websocket",
    "aiohttp",
)

QUICK = {
    "repeats": 1,
    "storm_sizes": (10, 100),
    "storm_ws_sizes": (100,),
    "storm_seconds": 2.0,
    "paced_spectators": 100,
    "paced_seconds": 3.0,
    "scale_ws": 200,
    "scale_tcp": 200,
    "scale_storm_seconds": 2.0,
    "subs_large": 200,
    "subs_publishes": 1000,
    "subs_fanout_sinks": 20,
    "subs_fanout_publishes": 100,
    "subs_seconds": 0.7,
    "venue_sizes": (10,),
    "venue_seconds": 5.0,
}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated, from {','.join(WORKLOADS)} (default: all)",
    )
    p.add_argument("--targets", default=",".join(ALL_TARGETS), help="comma-separated")
    p.add_argument("--repeats", type=int, help="repeats per point (default 3, quick 1)")
    p.add_argument("--storm-sizes", type=_ints, help="N for the turn storm, e.g. 10,100,500")
    p.add_argument("--storm-ws-sizes", type=_ints, help="N also run over WebSocket")
    p.add_argument("--storm-seconds", type=float, help="time bound of one storm")
    p.add_argument("--venue-sizes", type=_ints, help="tables for the venue, e.g. 50,200")
    p.add_argument("--venue-seconds", type=float, help="play time of one venue repeat")
    p.add_argument("--tcp-client", choices=("paho", "lite"), default="paho")
    p.add_argument("--spectator-qos", type=int, choices=(0, 1), default=0)
    p.add_argument(
        "--hub-src",
        type=Path,
        help="run hub from this source tree (e.g. a `git archive` snapshot), not the checkout",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    return p


def _plan(args: argparse.Namespace, workdir: Path) -> Plan:
    fields: dict[str, Any] = dict(QUICK) if args.quick else {}
    if args.repeats:
        fields["repeats"] = args.repeats
    for name in ("storm_sizes", "storm_ws_sizes", "storm_seconds", "venue_sizes", "venue_seconds"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    requested = [t for t in args.targets.split(",") if t]
    unknown = [t for t in requested if t not in ALL_TARGETS]
    targets = tuple(t for t in ALL_TARGETS if t in requested)
    if unknown or not targets:
        msg = f"unknown targets {unknown}; choose from {ALL_TARGETS}"
        raise SystemExit(msg)
    return Plan(
        workdir=workdir,
        targets=targets,
        tcp_client=args.tcp_client,
        spectator_qos=args.spectator_qos,
        hub_src=args.hub_src.resolve() if args.hub_src else None,
        **fields,
    )


def _versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    try:
        done = subprocess.run(
            [mosquitto, "-h"], capture_output=True, text=True, timeout=10, check=False
        )
        found["mosquitto"] = done.stdout.splitlines()[0].split()[-1]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        found["mosquitto"] = "missing"
    return found


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return "?"
    return done.stdout.strip() or "?"


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _clean(value: Any) -> Any:
    """JSON without NaN (as null) and with string keys."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _notes(points: list[dict[str, Any]]) -> list[str]:
    """What the tables cannot show: refused connections, clients that fell behind."""
    notes: list[str] = []
    refused: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        if p["workload"] == "scale" and p.get("refused"):
            refused.setdefault(p["target"], []).append(p)
    for target, ps in refused.items():
        example = next((e for p in ps for e in p.get("refusals", [])), "")
        counts = ", ".join(str(p["refused"]) for p in ps)
        notes.append(f"scale {target}: refused connections per repeat: {counts} (e.g. {example})")
    for p in points:
        rejected = p.get("rejected") or p.get("storm_rejected")
        if rejected:
            notes.append(
                f"{p['workload']} {p['target']}/{p['transport']} n={p['n']} #{p['repeat']}: "
                f"{rejected} commands rejected ({p.get('rejects') or p.get('storm_rejects')})"
            )
        lost = p.get("incomplete") or p.get("storm_incomplete") or p.get("behind_at_end")
        if lost:
            notes.append(
                f"{p['workload']} {p['target']}/{p['transport']} n={p['n']} #{p['repeat']}: "
                f"{lost} versions not seen by every client / clients behind at the end"
            )
    return notes


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    chosen = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in chosen if w not in WORKLOADS]
    if unknown:
        print(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}", file=sys.stderr)
        return 2
    _raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="tablehub-bench-"))
    plan = _plan(args, workdir)
    started = datetime.now(UTC)
    meta: dict[str, Any] = {
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "quick" if args.quick else "full",
        "commit": _commit(),
        "hub_src": str(plan.hub_src) if plan.hub_src else "the checkout",
        "cpus": os.cpu_count(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "versions": _versions(),
        "workloads": chosen,
        "plan": dataclasses.asdict(plan),
    }
    rec = Recorder()
    rec.log(f"work directory {workdir}; workloads {chosen}; targets {plan.targets}")
    try:
        for name in chosen:
            WORKLOADS[name](plan, rec)
    except KeyboardInterrupt:
        rec.log("interrupted: writing what was measured")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    meta["minutes"] = (time.monotonic() - rec.started) / 60
    meta["failures"] = rec.failures
    meta["notes"] = _notes(rec.points)
    summary = summarize(rec.points)
    table = markdown(summary, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "summary": summary_json(summary), "points": rec.points}
    path = args.out / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(_clean(document), indent=1) + "\n")
    (args.out / "latest.md").write_text(table)
    print(table)
    rec.log(f"wrote {path} and {args.out / 'latest.md'}")
    return 1 if rec.failures else 0
