"""Files the hub writes next to its journal."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write ``text`` so readers see the old file or the new one, never half of it; the
    file is created with ``mode`` (private by default: passwords, tokens, codes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, mode)  # O_CREAT's mode is filtered by the umask
    tmp.replace(path)
