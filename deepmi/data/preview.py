"""PNG grids of images: a few samples of any deepmi dataset, or a task's test examples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

# Columns whose name ends like this are maps of a quantity, not [0, 1] images: drawn with a colour
# map and a colour bar, on a range shared along the row so prediction and truth compare by eye.
METRIC_SUFFIXES = ("depth", "disparity")


def save_grid(
    path: str | Path,
    columns: dict[str, torch.Tensor],
    n: int = 4,
    title: str = "",
    row_titles: Sequence[str] = (),
) -> Path:
    """Write one row per example and one panel per column; returns the written path.

    ``columns``: name -> ``(B, C, H, W)`` tensor (C = 1 grayscale, 3 RGB), the first ``n`` examples
    of each drawn. Uses matplotlib's Agg backend (no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not columns:
        raise ValueError("save_grid needs at least one column of (B, C, H, W) images")
    n = min(n, *(len(t) for t in columns.values()))
    if n < 1:
        raise ValueError("Nothing to draw: the columns hold no examples or n < 1; pass n >= 1.")
    height, width = next(iter(columns.values())).shape[-2:]
    panel_w = 3.2
    panel_h = max(panel_w * height / width, 1.0) + 0.4
    fig, axes = plt.subplots(
        n, len(columns), figsize=(panel_w * len(columns), panel_h * n + 0.3), squeeze=False
    )
    for row in range(n):
        maps = [t[row].float() for name, t in columns.items() if name.endswith(METRIC_SUFFIXES)]
        vmax = max((float(t.max()) for t in maps), default=1.0)
        for col, (name, images) in enumerate(columns.items()):
            ax = axes[row, col]
            image = images[row].detach().float().cpu()
            image = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0).clamp(0, 1)
            if name.endswith(METRIC_SUFFIXES):
                shown = ax.imshow(image, cmap="viridis", vmin=0.0, vmax=vmax)
                fig.colorbar(shown, ax=ax, fraction=0.025, pad=0.01)
            else:
                ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            label = f"{row_titles[row]} {name}" if row < len(row_titles) and col == 0 else name
            if row == 0 or col == 0:
                ax.set_title(label, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def save_preview(
    dataset: Dataset, path: str | Path, n: int = 4, indices: Sequence[int] | None = None
) -> Path:
    """A grid of dataset samples: one row per sample, one panel per image-like (C, H, W) entry.

    Scalar entries (e.g. tx, theta) are printed in the row's first title. Returns the written path.
    """
    if indices is None:
        indices = list(range(min(n, len(dataset))))
    if not indices:
        raise ValueError("Nothing to preview: the dataset is empty or indices is empty; pass n >= 1.")
    samples = [dataset[i] for i in indices]
    image_keys = [k for k, v in samples[0].items() if torch.is_tensor(v) and v.dim() == 3]
    if not image_keys:
        raise ValueError("Samples hold no (C, H, W) tensors to draw; save_preview needs image entries.")
    columns = {key: torch.stack([sample[key] for sample in samples]) for key in image_keys}
    row_titles = []
    for index, sample in zip(indices, samples, strict=True):
        scalars = ", ".join(
            f"{k}={v.item():.2f}"
            for k, v in sample.items()
            if torch.is_tensor(v) and v.dim() == 0 and v.is_floating_point()
        )
        row_titles.append(f"#{index}" + (f" ({scalars})" if scalars else ""))
    return save_grid(path, columns, n=len(samples), row_titles=row_titles)
