"""How the suite shares a small machine under pytest-xdist (``make test`` runs it on
several workers with ``--dist loadgroup``; ``tests/conftest.py`` installs the scheduler).

Most tests wait on brokers, subprocesses and deadlines, so several run at once. A few keep
a core busy for long: they are listed in ``CPU_HOGS`` and all run on one worker, one after
another (and first: the largest group is handed out first), so two never compete for the
CPU while the other workers run the rest. A new test that starts Chromium, a storm of
restarts or a cluster belongs in the list.

The list is by node id, not by ``@pytest.mark.xdist_group``: pytest-xdist 3.8 marks a
group by rewriting the node id in the worker, which pytest 9.2's structured node ids
ignore, so ``xdist_group`` is silently dropped (pytest-dev/pytest-xdist#1386). The
controller sees only node ids, so the grouping is done there, by path.
"""

from __future__ import annotations

from xdist.scheduler import LoadGroupScheduling

__all__ = ["CPU_HOGS", "CpuHogScheduling"]

CPU_HOGS = (
    "tests/browser/",  # Chromium
    "tests/faults/test_kill9.py",  # 22 hub restarts under a turn storm, Chromium, pi-node
    "tests/faults/test_sigstop.py",
    "tests/faults/test_external_broker.py",  # kill -9 of Mosquitto and of the hub
    "tests/integration/test_paho_interop.py",  # upstream's client allows 0.5 s a CONNACK
    "tests/nats/",  # 3-node clusters: failover, node kills, standby takeovers, Chromium
)
"""Node id prefixes (paths from the checkout, ``/`` for a whole directory)."""

GROUP = "cpu-hogs"


class CpuHogScheduling(LoadGroupScheduling):  # type: ignore[misc]
    """``--dist loadgroup`` (tests one by one to whichever worker is free, each
    ``xdist_group`` on one worker), with every test of ``CPU_HOGS`` in one group."""

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(CPU_HOGS):
            return GROUP
        scope: str = super()._split_scope(nodeid)
        return scope
