"""How the reporting scripts write their figures: one look for every PNG under results/figures/."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_png(fig: Any, out: Path) -> Path:
    """Write a matplotlib figure to ``out`` (folders created) and free it."""
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
