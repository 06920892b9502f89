"""One live run per folder: a lock file that names its holder.

Two runs writing one folder at once (a re-launched sweep, a typo in ``hydra.run.dir``) would
interleave their ``metrics.json``, ``last.ckpt`` and ``run_config.json``, and the later writer's
result would silently replace the earlier one's. The lock is an ``fcntl.flock`` on
``<folder>/.run.lock``: the kernel releases it when its process dies, however it dies, so a lock
left by a killed run (SIGKILL, a crashed node) is taken over, with a warning naming the dead holder,
instead of blocking the folder forever. The file's text says who holds it (pid, host, start, command).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

LOCK_FILE = ".run.lock"


class FolderBusyError(RuntimeError):
    """Another live process holds the run folder's lock."""


def _holder_text(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "a process that has not written its name yet"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
        f"{holder.get('command')}"
    )


class RunLock:
    """Hold ``<folder>/.run.lock`` for the duration of a ``with`` block (a no-op when ``enabled`` is false,
    e.g. on DDP ranks other than 0, which share rank 0's run)."""

    def __init__(self, folder: Path, enabled: bool = True) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.enabled = enabled
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(fd)
            os.close(fd)
            raise FolderBusyError(
                f"{self.path.parent} is in use by another run ({_holder_text(holder)}). Two runs in one "
                "folder would overwrite each other's record and checkpoint. Wait for it to end, stop it, "
                "or run in another folder (drop hydra.run.dir, or pick another)."
            ) from None
        except OSError as error:  # a filesystem without locks (some network mounts): run unguarded
            log.warning("%s: cannot lock (%s); nothing stops a second run in this folder", self.path, error)
            os.close(fd)
            return self
        stale = self._read(fd)
        if stale:
            log.warning(
                "%s: taking over a stale lock of a run that is no longer alive (%s)",
                self.path.parent,
                _holder_text(stale),
            )
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)  # an empty file is a free lock with no stale holder to warn about
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @staticmethod
    def _read(fd: int) -> dict[str, Any] | None:
        try:
            text = os.pread(fd, 4096, 0).decode()
            return json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return {"pid": "?", "host": "?", "started": "?", "command": "unreadable lock file"}
