"""SIGTERM and SIGINT as a recorded stop with the true signal, and an exit code that says so.

Lightning turns SIGTERM (a scheduler's pre-emption, ``scancel``) into ``SIGTERMException``, a
``SystemExit`` with code 0, and SIGINT into ``sys.exit(1)``: a scheduler would read a pre-empted
run as a success, and the record could not tell the two apart. While a run is inside
:func:`catch_stop_signals`, both raise :class:`RunStopped` instead (Lightning's own SIGTERM handler
still runs first: it forwards the signal to DDP worker processes), the run records ``stopped`` with
the signal's name, and ``run.py`` exits with 128 + the signal number, as a shell reports it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunStopped(BaseException):  # noqa: N818 (a stop request, like KeyboardInterrupt, not an error)
    """Raised in the main thread when the process receives one of ``STOP_SIGNALS``.

    A BaseException, so that no ``except Exception`` on the way (Lightning's, Hydra's) swallows it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"received {self.name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise RunStopped(signum)


@contextmanager
def catch_stop_signals(enabled: bool = True) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`RunStopped`; the old handlers come back after."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
