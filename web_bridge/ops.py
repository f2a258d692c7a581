"""Operations endpoints: ``/healthz`` and Prometheus ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from web_bridge.ports import Bridge, Histogram, Metric

__all__ = ["ops_router", "render_metrics"]

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _histogram_lines(metric: Histogram) -> list[str]:
    lines = [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} histogram"]
    for bound, count in metric.buckets:
        le = "+Inf" if bound == float("inf") else f"{bound:g}"
        lines.append(f'{metric.name}_bucket{{le="{le}"}} {count}')
    lines += [f"{metric.name}_sum {metric.sum:.6f}", f"{metric.name}_count {metric.count}"]
    return lines


def render_metrics(metrics: Iterable[Metric | Histogram]) -> str:
    """The Prometheus text exposition format (0.0.4)."""
    lines: list[str] = []
    for metric in metrics:
        if isinstance(metric, Histogram):
            lines += _histogram_lines(metric)
            continue
        lines += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {metric.kind}"]
        for labels, value in metric.samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            name = f"{metric.name}{{{label_text}}}" if label_text else metric.name
            lines.append(f"{name} {value:g}")
    return "\n".join(lines) + "\n"


def ops_router(bridge: Bridge, bridge_metrics: Callable[[], list[Metric]]) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    def healthz() -> JSONResponse:
        """Broker, state service and disk: 200 if all are fine, else 503."""
        parts = bridge.health()
        ok = all(part.get("ok", False) for part in parts.values())
        return JSONResponse({"ok": ok, **parts}, status_code=200 if ok else 503)

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Clients by role, commands by result and error code, journal size, sessions."""
        families = [*await bridge.metrics.metrics(), *bridge_metrics()]
        return PlainTextResponse(render_metrics(families), media_type=PROMETHEUS_TEXT)

    return router
