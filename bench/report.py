"""Results: the summary of repeated points, the JSON document and the Markdown tables."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench.stats import Spread, spread

__all__ = ["markdown", "summarize"]

Key = tuple[str, str, str, int]  # workload, target, transport, n


def summarize(points: list[dict[str, Any]]) -> dict[Key, dict[str, Spread]]:
    """Median, min and max of every numeric figure, per (workload, target, transport, n)."""
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for p in points:
        groups[(p["workload"], p["target"], p["transport"], p["n"])].append(p)
    summary: dict[Key, dict[str, Spread]] = {}
    for key, members in groups.items():
        names = {
            k
            for m in members
            for k, v in m.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("n", "repeat")
        }
        summary[key] = {k: spread([float(m[k]) for m in members if k in m]) for k in sorted(names)}
    return summary


def summary_json(summary: dict[Key, dict[str, Spread]]) -> list[dict[str, Any]]:
    return [
        {"workload": w, "target": t, "transport": k, "n": n, "figures": figures}
        for (w, t, k, n), figures in sorted(summary.items())
    ]


def _fmt(value: float, digits: int) -> str:
    if math.isnan(value):
        return "-"
    if digits == 0 or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _cell(s: Spread | None, digits: int = 1) -> str:
    if s is None or not s["n"]:
        return "-"
    median = _fmt(s["median"], digits)
    if s["n"] < 2 or s["min"] == s["max"]:
        return median
    return f"{median} ({_fmt(s['min'], digits)}..{_fmt(s['max'], digits)})"


def _ratio(a: Spread | None, b: Spread | None) -> str:
    if a is None or b is None or not a["n"] or not b["n"] or not b["median"]:
        return "-"
    return f"{a['median'] / b['median']:.2f}x"


Column = tuple[str, Callable[[dict[str, Spread]], str]]


def _col(title: str, metric: str, digits: int = 1) -> Column:
    return (title, lambda f: _cell(f.get(metric), digits))


def _pair(title: str, a: str, b: str, digits: int = 1) -> Column:
    return (title, lambda f: f"{_cell(f.get(a), digits)} / {_cell(f.get(b), digits)}")


def _table(
    summary: dict[Key, dict[str, Spread]], workload: str, columns: list[Column], label: str
) -> list[str]:
    rows = sorted((k, f) for k, f in summary.items() if k[0] == workload)
    if not rows:
        return []
    head = [label, "target", *(c[0] for c in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (_w, target, kind, n), figures in rows:
        name = target if kind in ("-", "sio") else f"{target} ({kind.upper()})"
        cells = [str(n), name, *(render(figures) for _t, render in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _storm_ratios(summary: dict[Key, dict[str, Spread]], workload: str) -> list[str]:
    metric = "server_cpu_ms_per_cmd" if workload == "storm" else "storm_server_cpu_ms_per_cmd"
    sizes = sorted({k[3] for k in summary if k[0] == workload})
    if not sizes:
        return []

    def get(target: str, kind: str, n: int) -> Spread | None:
        return summary.get((workload, target, kind, n), {}).get(metric)

    lines = [
        "| N | hub ÷ hub+mosquitto (TCP) | hub (TCP) ÷ socketio | hub (WS) ÷ socketio "
        "| hub ÷ hub+mosquitto (WS) | hub+nats ÷ hub+mosquitto (TCP) "
        "| hub+nats3 ÷ hub+nats (TCP) |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        lines.append(
            f"| {n} | {_ratio(get('hub', 'tcp', n), get('hub+mosquitto', 'tcp', n))} "
            f"| {_ratio(get('hub', 'tcp', n), get('socketio', 'sio', n))} "
            f"| {_ratio(get('hub', 'ws', n), get('socketio', 'sio', n))} "
            f"| {_ratio(get('hub', 'ws', n), get('hub+mosquitto', 'ws', n))} "
            f"| {_ratio(get('hub+nats', 'tcp', n), get('hub+mosquitto', 'tcp', n))} "
            f"| {_ratio(get('hub+nats3', 'tcp', n), get('hub+nats', 'tcp', n))} |"
        )
    return lines


def _subs_ratios(summary: dict[Key, dict[str, Spread]]) -> list[str]:
    sizes = sorted({k[3] for k in summary if k[0] == "subs"})
    targets = sorted({k[1] for k in summary if k[0] == "subs"})
    if len(sizes) < 2:
        return []
    lo, hi = sizes[0], sizes[-1]
    lines = [f"| target | µs/publish, {hi} ÷ {lo} filters |", "|---|---|"]
    for t in targets:
        a = summary.get(("subs", t, "tcp", hi), {}).get("broker_us_per_publish")
        b = summary.get(("subs", t, "tcp", lo), {}).get("broker_us_per_publish")
        lines.append(f"| {t} | {_ratio(a, b)} |")
    return lines


def _venue_ratios(summary: dict[Key, dict[str, Spread]]) -> list[str]:
    sizes = sorted({k[3] for k in summary if k[0] == "venue"})
    if not sizes:
        return []

    def get(target: str, kind: str, t: int) -> Spread | None:
        return summary.get(("venue", target, kind, t), {}).get("server_cpu_ms_per_cmd")

    lines = ["| tables | hub ÷ socketio | hub ÷ hub+mosquitto |", "|---|---|---|"]
    for t in sizes:
        hub = get("hub", "tcp+ws", t)
        lines.append(
            f"| {t} | {_ratio(hub, get('socketio', 'sio', t))} "
            f"| {_ratio(hub, get('hub+mosquitto', 'tcp+ws', t))} |"
        )
    return lines


def _join(*tables: list[str]) -> list[str]:
    out: list[str] = []
    for table in tables:
        if table:
            out += [*([""] if out else []), *table]
    return out


def markdown(summary: dict[Key, dict[str, Spread]], meta: dict[str, Any]) -> str:
    out = [
        f"Run {meta['started_at']} · {meta['mode']} · commit {meta['commit']} · "
        f"hub from {meta['hub_src']} · "
        f"{meta['cpus']} CPUs · load before {meta['load_before']} · {meta['minutes']:.1f} min",
        "",
        "Cells: median (min..max) over the repeats. CPU is all server processes together "
        "(psutil); `gen` and `others` are the cores used by the load generator and by "
        "everything else on the machine during the window.",
    ]
    storm = [
        _col("cmd/s", "cmd_per_s", 0),
        _pair("sender p50 / p99 ms", "sender_p50_ms", "sender_p99_ms"),
        _pair("fan-out p50 / p99 ms", "fanout_p50_ms", "fanout_p99_ms"),
        _col("server CPU ms/cmd", "server_cpu_ms_per_cmd", 2),
        _col("µs/delivery", "server_cpu_us_per_delivery", 1),
        _col("server RSS MB", "server_peak_rss_mb", 0),
        _pair("gen / others cores", "generator_cores", "others_cores", 2),
        _col("busiest gen worker %", "busiest_worker_pct", 0),
        _pair("stalls / incomplete", "stalls", "incomplete", 0),
    ]
    sections: list[tuple[str, list[str]]] = [
        ("Turn storm", _table(summary, "storm", storm, "N")),
        ("Turn storm: server CPU per command, ratios of medians", _storm_ratios(summary, "storm")),
        (
            "Paced table (one command per 100 ms)",
            _table(
                summary,
                "paced",
                [
                    _pair("sender p50 / p99 ms", "sender_p50_ms", "sender_p99_ms"),
                    _pair("fan-out p50 / p99 ms", "fanout_p50_ms", "fanout_p99_ms"),
                    _col("fan-out max ms", "fanout_max_ms", 0),
                    _pair("stalls / late ticks", "stalls", "late_ticks", 0),
                    _col("server CPU ms/cmd", "server_cpu_ms_per_cmd", 2),
                    _pair("gen / others cores", "generator_cores", "others_cores", 2),
                    _col("busiest gen worker %", "busiest_worker_pct", 0),
                ],
                "N",
            ),
        ),
        (
            "Connection scale (idle clients, then a 10-client storm with them attached)",
            _table(
                summary,
                "scale",
                [
                    _pair("connected / refused", "connected", "refused", 0),
                    _col("connects/s", "connect_per_s", 0),
                    _col("RSS KiB/client", "rss_kib_per_client", 1),
                    _col("kept after disconnect KiB/client", "rss_kept_kib_per_client", 1),
                    _col("storm cmd/s", "storm_cmd_per_s", 0),
                    _pair(
                        "storm sender p50 / p99 ms", "storm_sender_p50_ms", "storm_sender_p99_ms"
                    ),
                    _col("storm CPU ms/cmd", "storm_server_cpu_ms_per_cmd", 2),
                ],
                "idle",
            ),
        ),
        (
            "Venue (T tables, 2 players + 3 watchers each, human pace; hubs: half TCP, half WS)",
            _table(
                summary,
                "venue",
                [
                    _col("clients", "clients", 0),
                    _col("cmd/s", "cmd_per_s", 0),
                    _col("server CPU ms/cmd", "server_cpu_ms_per_cmd", 2),
                    _pair("reply p50 / p99 ms", "reply_p50_ms", "reply_p99_ms"),
                    _pair("sender p50 / p99 ms", "sender_p50_ms", "sender_p99_ms"),
                    _col("fan-out p99 ms", "fanout_p99_ms", 1),
                    _pair("stalls / lost", "stalls", "lost", 0),
                    _col("rejected", "rejected", 0),
                    _col("server RSS MB", "server_peak_rss_mb", 0),
                    _pair("gen / others cores", "generator_cores", "others_cores", 2),
                    _col("busiest gen worker %", "busiest_worker_pct", 0),
                ],
                "tables",
            ),
        ),
        ("Venue: server CPU per command, ratios of medians", _venue_ratios(summary)),
        (
            "Footprint",
            _table(
                summary,
                "footprint",
                [
                    _col("start → ready s", "start_to_ready_s", 2),
                    _col("idle RSS MB", "idle_rss_mb", 1),
                    _col("processes", "processes", 0),
                ],
                "-",
            ),
        ),
        (
            "Subscription scale (QoS 0 publishes to one sink; N = distinct filters)",
            _join(
                _table(
                    summary,
                    "subs",
                    [
                        _col("publishes/s", "publish_per_s", 0),
                        _col("broker µs/publish", "broker_us_per_publish", 1),
                        _col("lost", "lost", 0),
                    ],
                    "filters",
                ),
                _subs_ratios(summary),
            ),
        ),
        (
            "Delivery cost (QoS 0 publishes fanned out to N sinks)",
            _table(
                summary,
                "subs-fanout",
                [
                    _col("broker µs/delivery", "broker_us_per_delivery", 1),
                    _col("broker µs/publish", "broker_us_per_publish", 0),
                    _col("lost", "lost", 0),
                ],
                "sinks",
            ),
        ),
    ]
    for title, lines in sections:
        if lines:
            out += ["", f"### {title}", "", *lines]
    notes = meta.get("notes", [])
    if notes:
        out += ["", "### Notes from this run", "", *(f"- {note}" for note in notes)]
    failures = meta.get("failures", [])
    if failures:
        out += ["", "### Failures", ""]
        out += [
            f"- {f['workload']} {f['target']}/{f['transport']} n={f['n']}: "
            f"{f['error'].splitlines()[0][:300]}"
            for f in failures
        ]
    return "\n".join(out) + "\n"
