"""PNG grid of a few samples of any deepmi dataset, for eyeballing generated data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

# Keys shown with a colour map and their own range instead of as [0, 1] grayscale images.
_METRIC_KEYS = {"disparity": "magma", "depth": "viridis_r"}


def save_preview(
    dataset: Dataset, path: str | Path, n: int = 4, indices: Sequence[int] | None = None
) -> Path:
    """Write a grid with one row per sample and one panel per image-like (C, H, W) entry.

    Scalar entries (e.g. tx, theta) are printed in the row's first title. Uses matplotlib's Agg
    backend (no display needed). Returns the written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if indices is None:
        indices = list(range(min(n, len(dataset))))
    if not indices:
        raise ValueError("Nothing to preview: the dataset is empty or indices is empty; pass n >= 1.")
    samples = [dataset[i] for i in indices]
    image_keys = [k for k, v in samples[0].items() if torch.is_tensor(v) and v.dim() == 3]
    if not image_keys:
        raise ValueError("Samples hold no (C, H, W) tensors to draw; save_preview needs image entries.")
    height, width = samples[0][image_keys[0]].shape[-2:]
    panel_w = 4.0
    panel_h = max(panel_w * height / width, 1.0) + 0.4
    fig, axes = plt.subplots(
        len(samples),
        len(image_keys),
        figsize=(panel_w * len(image_keys), panel_h * len(samples)),
        squeeze=False,
    )
    for row, (index, sample) in enumerate(zip(indices, samples, strict=True)):
        scalars = ", ".join(
            f"{k}={v.item():.2f}"
            for k, v in sample.items()
            if torch.is_tensor(v) and v.dim() == 0 and v.is_floating_point()
        )
        for col, key in enumerate(image_keys):
            ax = axes[row, col]
            image = sample[key].detach().float()
            image = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0).clamp(0, 1)
            if key in _METRIC_KEYS:
                shown = ax.imshow(image, cmap=_METRIC_KEYS[key])
                fig.colorbar(shown, ax=ax, fraction=0.025, pad=0.01)
            else:
                ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            title = f"#{index} {key}" + (f"  ({scalars})" if col == 0 and scalars else "")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
