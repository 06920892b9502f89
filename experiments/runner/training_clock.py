"""A run's wall time summed over its resumptions, carried in the checkpoint.

Without it a run killed at epoch 45 and resumed would report only the last segment's time (a
50-epoch run "taking" 39 s). The time after the last checkpoint of a killed segment is not
counted: that work is redone, and counted, in the next segment.
"""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import Callback


class TrainingClock(Callback):
    """Seconds since ``started`` plus what earlier segments had spent when their checkpoint was saved."""

    def __init__(self, started: float | None = None) -> None:
        self.started = time.perf_counter() if started is None else started
        self.earlier_s = 0.0  # restored from the checkpoint on resume
        self.resumes = 0

    def elapsed(self) -> float:
        return self.earlier_s + (time.perf_counter() - self.started)

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed_s": self.elapsed(), "resumes": self.resumes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.earlier_s = float(state["elapsed_s"])
        self.resumes = int(state.get("resumes", 0)) + 1
