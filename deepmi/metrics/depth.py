"""Depth and disparity errors for DeepMI's Exp3, unsupervised stereo depth (Sec. 5.3).

The paper reports only the MAE in metres between predicted and measured depth. Beside it we
compute the standard monocular-depth metrics of Eigen et al. (2014) in the form of Godard et
al.'s evaluation code (monodepth, DeepMI's reference [10]), and the stereo-benchmark disparity
errors (KITTI / Middlebury) where dense ground-truth disparity exists. With ``p`` the predicted
and ``g`` the true depth over the N valid pixels:

- ``mae_depth_m``: mean |p - g|, metres (the paper's metric);
- ``abs_rel``: mean |p - g| / g;
- ``sq_rel``: mean (p - g)^2 / g, metres;
- ``rmse``: sqrt(mean (p - g)^2), metres;
- ``rmse_log``: sqrt(mean (ln p - ln g)^2);
- ``delta1/2/3``: fraction (in [0, 1]) of pixels with max(p / g, g / p) < 1.25^k, k = 1, 2, 3;

and with ``d_p``, ``d_g`` the predicted and true disparity in pixels of the evaluated image:

- ``epe_px``: end-point error, mean |d_p - d_g|;
- ``bad1_pct``, ``bad3_pct``: percentage of pixels with |d_p - d_g| > 1 px / > 3 px.

**Accumulation.** Every metric is computed from per-pixel sums (:func:`depth_error_sums`,
:func:`disparity_error_sums`), which add over batches; :func:`depth_metrics_from_sums` then
divides by the total number of valid pixels of the split (and takes the square root for the
RMSEs). The result is a per-pixel average over the whole split, exactly as if the split were one
batch, independent of the batch size. (monodepth instead averages per-image values. For the
means and fractions the two conventions agree when every image has the same number of valid
pixels, e.g. a single test image or dense ground truth without holes; the RMSEs agree only for a
single image, since the mean of per-image RMSEs is not the RMSE over all pixels.)

Sums are float64: a split's pixel count (10^8) stays exact and the sums do not lose digits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

DEPTH_SUM_KEYS = ("count", "abs", "abs_rel", "sq_rel", "sq", "sq_log", "delta1", "delta2", "delta3")
DISPARITY_SUM_KEYS = ("count", "abs", "bad1", "bad3")
DEPTH_METRICS = ("mae_depth_m", "abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
DISPARITY_METRICS = ("epe_px", "bad1_pct", "bad3_pct")
DELTA = 1.25
MAX_MEDIAN_VALUES = 10_000_000


def _valid_mask(pred: Tensor, target: Tensor, valid: Tensor | None, name: str) -> Tensor:
    if pred.shape != target.shape:
        raise ValueError(
            f"predicted and true {name} must have the same shape; got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if valid is None:
        valid = torch.isfinite(target) & (target > 0)
    else:
        if valid.shape != target.shape:
            raise ValueError(
                f"valid must have the {name}'s shape {tuple(target.shape)}; got {tuple(valid.shape)}"
            )
        valid = valid.bool()
    return valid


def depth_error_sums(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> dict[str, Tensor]:
    """Per-pixel sums (float64 scalars) of the depth errors over the valid pixels, keys DEPTH_SUM_KEYS.

    Args:
        pred: predicted depth, any shape, metres; must be > 0 and finite on the valid pixels
            (clip it to [min_depth, max_depth] first, as Godard et al.'s evaluation does).
        target: true depth, same shape, metres.
        valid: bool mask, same shape; default: target finite and > 0 (0 = no measurement, the
            convention of the KITTI loader).

    ``delta<k>`` holds the number of pixels with max(p/g, g/p) < 1.25^k; divide by ``count``.
    """
    valid = _valid_mask(pred, target, valid, "depth")
    p = pred[valid].double()
    g = target[valid].double()
    if not (torch.isfinite(g).all() and (g > 0).all()):
        raise ValueError("true depth must be finite and > 0 on every valid pixel")
    if not (torch.isfinite(p).all() and (p > 0).all()):
        raise ValueError(
            "predicted depth must be finite and > 0 on every valid pixel (clip it to [min_depth, max_depth])"
        )
    diff = p - g
    ratio = torch.maximum(p / g, g / p)
    return {
        "count": torch.tensor(float(p.numel()), dtype=torch.float64, device=p.device),
        "abs": diff.abs().sum(),
        "abs_rel": (diff.abs() / g).sum(),
        "sq_rel": (diff.square() / g).sum(),
        "sq": diff.square().sum(),
        "sq_log": (p.log() - g.log()).square().sum(),
        "delta1": (ratio < DELTA).sum().double(),
        "delta2": (ratio < DELTA**2).sum().double(),
        "delta3": (ratio < DELTA**3).sum().double(),
    }


def depth_metrics_from_sums(sums: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The DEPTH_METRICS from accumulated :func:`depth_error_sums` (NaN when count is 0)."""
    n = sums["count"]
    if float(n) == 0:
        nan = torch.full((), math.nan, dtype=torch.float64, device=n.device)
        return dict.fromkeys(DEPTH_METRICS, nan)
    return {
        "mae_depth_m": sums["abs"] / n,
        "abs_rel": sums["abs_rel"] / n,
        "sq_rel": sums["sq_rel"] / n,
        "rmse": (sums["sq"] / n).sqrt(),
        "rmse_log": (sums["sq_log"] / n).sqrt(),
        "delta1": sums["delta1"] / n,
        "delta2": sums["delta2"] / n,
        "delta3": sums["delta3"] / n,
    }


def depth_metrics(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> dict[str, Tensor]:
    """All DEPTH_METRICS of one batch (or one whole split), pooled over its valid pixels."""
    return depth_metrics_from_sums(depth_error_sums(pred, target, valid))


def disparity_error_sums(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> dict[str, Tensor]:
    """Per-pixel sums (float64 scalars) of the disparity errors, keys DISPARITY_SUM_KEYS.

    Args:
        pred: predicted disparity in pixels, any shape (finite on the valid pixels).
        target: true disparity in pixels of the same image size, same shape.
        valid: bool mask; default: target finite and > 0 (0 or inf = unknown).

    ``bad1``/``bad3`` count the pixels whose error exceeds 1 / 3 px (strictly), as the KITTI and
    Middlebury stereo benchmarks' "bad 1.0" / "bad 3.0".
    """
    valid = _valid_mask(pred, target, valid, "disparity")
    p = pred[valid].double()
    g = target[valid].double()
    if not (torch.isfinite(g).all() and torch.isfinite(p).all()):
        raise ValueError("true and predicted disparity must be finite on every valid pixel")
    error = (p - g).abs()
    return {
        "count": torch.tensor(float(p.numel()), dtype=torch.float64, device=p.device),
        "abs": error.sum(),
        "bad1": (error > 1.0).sum().double(),
        "bad3": (error > 3.0).sum().double(),
    }


def disparity_metrics_from_sums(sums: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The DISPARITY_METRICS from accumulated :func:`disparity_error_sums` (NaN when count is 0)."""
    n = sums["count"]
    if float(n) == 0:
        nan = torch.full((), math.nan, dtype=torch.float64, device=n.device)
        return dict.fromkeys(DISPARITY_METRICS, nan)
    return {
        "epe_px": sums["abs"] / n,
        "bad1_pct": 100.0 * sums["bad1"] / n,
        "bad3_pct": 100.0 * sums["bad3"] / n,
    }


def disparity_metrics(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> dict[str, Tensor]:
    """All DISPARITY_METRICS of one batch (or one whole split), pooled over its valid pixels."""
    return disparity_metrics_from_sums(disparity_error_sums(pred, target, valid))


def split_depth_median(dataset, max_values: int = MAX_MEDIAN_VALUES) -> float:
    """Median of the valid true depths (metres) of a dataset split, for the constant-depth baseline.

    If the dataset has a ``depth_values()`` method (e.g. a dataset of random crops of one view,
    :class:`deepmi.data.middlebury.MiddleburyMotorcycle`), its 1-D array of valid depths is used.
    Otherwise every item's ``"depth"`` entry is read and its finite, positive pixels are kept (0 =
    no measurement). The median is exact (numpy's: the mean of the two middle values for an even
    count) while the split holds at most ``max_values`` pixels; a larger split is subsampled by
    keeping every k-th pixel of every item (deterministic), k = ceil(pixels / max_values).
    """
    getter = getattr(dataset, "depth_values", None)
    if callable(getter):
        values = np.asarray(getter(), dtype=np.float64).ravel()
    else:
        n = len(dataset)
        if n == 0:
            raise ValueError("cannot take the median depth of an empty split")
        chunks, stride = [], 1
        for index in range(n):
            item = dataset[index]
            if not isinstance(item, Mapping) or "depth" not in item:
                raise ValueError(
                    f"split_depth_median needs items with a 'depth' entry; item {index} of "
                    f"{type(dataset).__name__} has none"
                )
            depth = torch.as_tensor(item["depth"]).reshape(-1)
            if index == 0:
                stride = max(1, math.ceil(n * depth.numel() / max_values))
            depth = depth[::stride]
            chunks.append(depth[torch.isfinite(depth) & (depth > 0)].double().numpy())
        values = np.concatenate(chunks)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        raise ValueError(f"{type(dataset).__name__} has no valid (finite, > 0) depth to take a median of")
    return float(np.median(values))
