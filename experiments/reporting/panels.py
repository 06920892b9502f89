"""A PNG grid of test examples: one row per example, one column per named image."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def save_panel(path: Path, columns: dict[str, torch.Tensor], n: int = 4, title: str = "") -> Path:
    """columns: name -> (B, 1, H, W) tensor; the first n examples of each, grayscale or viridis.

    Names ending in "depth" or "disparity" get a colour map and a shared range per row, so the
    prediction and the ground truth can be compared by eye.
    """
    n = min(n, *(len(t) for t in columns.values()))
    fig, axes = plt.subplots(n, len(columns), figsize=(3.2 * len(columns), 1.3 * n + 0.6), squeeze=False)
    for row in range(n):
        scalar = [
            t[row, 0].float().cpu() for name, t in columns.items() if name.endswith(("depth", "disparity"))
        ]
        vmax = max((float(t.max()) for t in scalar), default=1.0)
        for col, (name, images) in enumerate(columns.items()):
            image = images[row, 0].detach().float().cpu()
            ax = axes[row, col]
            if name.endswith(("depth", "disparity")):
                ax.imshow(image, cmap="viridis", vmin=0, vmax=vmax)
            else:
                ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
