"""Ways to take the disk away from a running hub, and give it back.

- ``TmpfsDisk``: the data directory on a small tmpfs of its own; a filler file takes the
  rest of it (ENOSPC). Needs the right to mount (root).
- ``LoopDisk``: the same on an ext4 image file mounted through a loop device.
- ``FileSizeLimit``: no mount at all: RLIMIT_FSIZE of the hub process set (``prlimit``) to
  one byte, so every write that would grow a file fails (EFBIG; Python ignores SIGXFSZ, as
  the hub is started by it). Only the hub process is affected.

Each is a context manager; ``available()`` tells whether this machine allows it (and why
not). Every mount is undone on exit, lazily if something still holds it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

__all__ = ["DISKS", "Disk", "FileSizeLimit", "LoopDisk", "TmpfsDisk"]

_FILLER = "filler.bin"
_CHUNK = b"\0" * 65536
_MAX_FILLER = 1 << 30


class Disk(Protocol):
    name: str
    data_dir: Path
    stays_full_for_new_processes: bool
    """True when a hub started while full meets the full disk too."""

    def available(self) -> str | None:
        """None if this works here, else why not."""

    def fill(self, hub_pid: int) -> None: ...

    def free(self, hub_pid: int) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def _fill_with_filler(directory: Path) -> None:
    """Write a file until the file system says ENOSPC (64 KiB at a time, then bytes)."""
    fd = os.open(directory / _FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (_CHUNK, b"\0"):
            with contextlib.suppress(OSError):
                while os.fstat(fd).st_size < _MAX_FILLER:
                    os.write(fd, chunk)
    finally:
        os.close(fd)
    probe = directory / "probe.bin"
    error = 0
    try:
        probe.write_bytes(_CHUNK)
    except OSError as exc:
        error = exc.errno or 0
    probe.unlink(missing_ok=True)
    if error != errno.ENOSPC:
        msg = f"{directory} is not full after writing the filler: {os.strerror(error)}"
        raise AssertionError(msg)


class _MountedDisk:
    """A small file system of its own mounted at ``work/mnt``; the data dir inside it."""

    name = "mounted"
    stays_full_for_new_processes = True

    def __init__(self, work: Path) -> None:
        self.work = work
        self.mount_point = work / "mnt"
        self.data_dir = self.mount_point / "var"
        self._mounted = False

    def _mount(self) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def available(self) -> str | None:
        if os.geteuid() != 0:
            return "mounting needs root"
        self.mount_point.mkdir(parents=True, exist_ok=True)
        done = self._mount()
        if done.returncode != 0:
            return f"{self.name} mount not permitted here: {done.stderr.strip()}"
        self._mounted = True
        return None

    def fill(self, hub_pid: int) -> None:
        _fill_with_filler(self.mount_point)

    def free(self, hub_pid: int) -> None:
        (self.mount_point / _FILLER).unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._mounted and _run("umount", str(self.mount_point)).returncode != 0:
            _run("umount", "-l", str(self.mount_point))
        self._mounted = False


class TmpfsDisk(_MountedDisk):
    name = "tmpfs"

    def _mount(self) -> subprocess.CompletedProcess[str]:
        options = "size=8m,mode=0700"
        return _run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.mount_point))


class LoopDisk(_MountedDisk):
    name = "loop file"

    def _mount(self) -> subprocess.CompletedProcess[str]:
        if shutil.which("mkfs.ext4") is None:
            return subprocess.CompletedProcess([], 1, "", "mkfs.ext4 is missing")
        image = self.work / "disk.img"
        with image.open("wb") as file:
            file.truncate(16 << 20)
        made = _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
        if made.returncode != 0:
            return made
        return _run("mount", "-o", "loop", str(image), str(self.mount_point))


class FileSizeLimit:
    name = "RLIMIT_FSIZE"
    stays_full_for_new_processes = False

    def __init__(self, work: Path) -> None:
        self.data_dir = work / "var"

    def available(self) -> str | None:
        if not hasattr(resource, "prlimit"):
            return "no prlimit(2) on this system"
        return None

    def fill(self, hub_pid: int) -> None:
        resource.prlimit(hub_pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))

    def free(self, hub_pid: int) -> None:
        infinity = resource.RLIM_INFINITY
        with contextlib.suppress(ProcessLookupError):  # killed: the limit died with it
            resource.prlimit(hub_pid, resource.RLIMIT_FSIZE, (infinity, infinity))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


DISKS: dict[str, type[TmpfsDisk | LoopDisk | FileSizeLimit]] = {
    "tmpfs": TmpfsDisk,
    "loop": LoopDisk,
    "fsize": FileSizeLimit,
}
"""In order of preference."""
