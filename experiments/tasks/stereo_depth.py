"""DeepMI Exp3 (Sec. 5.3, Fig. 1c; Godard et al. 2017): depth from a stereo pair, unsupervised.

Test metrics (``deepmi.metrics.depth``): the paper's MAE in metres plus the monodepth/Eigen depth
metrics and, where the test data has dense ground-truth disparity (synthetic stereo,
Middlebury), the disparity end-point error and bad-1/bad-3, all pooled per pixel over the whole
test split; and the same metrics for a constant-depth baseline (the median training depth).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torchmetrics import Metric

from deepmi.metrics.depth import (
    DEPTH_SUM_KEYS,
    DISPARITY_SUM_KEYS,
    depth_error_sums,
    depth_metrics_from_sums,
    disparity_error_sums,
    disparity_metrics,
    disparity_metrics_from_sums,
    split_depth_median,
)
from deepmi.models.warp import warp_right_to_left
from experiments.tasks.base import TaskModule

log = logging.getLogger(__name__)


def disparity_smoothness(disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Godard et al.'s edge-aware first-order smoothness (off unless smoothness_weight > 0)."""
    d_dx = (disparity[..., :, 1:] - disparity[..., :, :-1]).abs()
    d_dy = (disparity[..., 1:, :] - disparity[..., :-1, :]).abs()
    i_dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    i_dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (d_dx * torch.exp(-i_dx)).mean() + (d_dy * torch.exp(-i_dy)).mean()


def _valid_masks(batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pixels with a true depth (finite, > 0), and of those the ones with a true disparity (None
    when the batch has no dense disparity)."""
    truth = batch["depth"]
    valid = torch.isfinite(truth) & (truth > 0)
    disparity = batch.get("disparity")
    if disparity is None:
        return valid, None
    return valid, valid & torch.isfinite(disparity) & (disparity > 0)


def _as_tensors(sums: Mapping[str, float]) -> dict[str, torch.Tensor]:
    return {key: torch.tensor(value, dtype=torch.float64) for key, value in sums.items()}


class ErrorSums(Metric):
    """Adds per-pixel error sums (``deepmi.metrics.depth``) over test batches and processes.

    ``compute()`` turns the totals into metrics with ``finalize``: per-pixel averages over the
    whole split, not means of batch means. float64 states, summed across processes under DDP.
    """

    full_state_update = False

    def __init__(
        self, keys: tuple[str, ...], finalize: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]
    ) -> None:
        super().__init__()
        self.keys = keys
        self.finalize = finalize
        for key in keys:
            self.add_state(key, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, sums: Mapping[str, torch.Tensor]) -> None:
        for key in self.keys:
            setattr(self, key, getattr(self, key) + sums[key].to(torch.float64))

    def compute(self) -> dict[str, torch.Tensor]:
        return self.finalize({key: getattr(self, key) for key in self.keys})


def save_disparity_panel(
    path: Path,
    left: torch.Tensor,
    true_disparity: torch.Tensor,
    predicted_disparity: torch.Tensor,
    valid: torch.Tensor | None = None,
    title: str = "",
) -> Path:
    """One row: left image, true disparity, predicted disparity, |error| map (DeepMI Exp3, Sec. 5.3)."""
    return save_disparity_comparison(path, left, true_disparity, {"": predicted_disparity}, valid, title)


def _error_stats(pred: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor) -> str:
    if not valid.any():
        return "no ground truth"
    m = {name: float(value) for name, value in disparity_metrics(pred, truth, valid).items()}
    return f"EPE {m['epe_px']:.2f} px, bad-1 {m['bad1_pct']:.1f}%, bad-3 {m['bad3_pct']:.1f}%"


def save_disparity_comparison(
    path: Path,
    left: torch.Tensor,
    true_disparity: torch.Tensor,
    predictions: Mapping[str, torch.Tensor],
    valid: torch.Tensor | None = None,
    title: str = "",
) -> Path:
    """One row per prediction: left image, true disparity, predicted disparity, |error| map.

    Tensors are (H, W) or (1, H, W) of one image; ``predictions`` maps a row label (e.g. the loss)
    to its predicted disparity in pixels. Every disparity shares one colour range (that of the
    valid ground truth) and every error map one range (0 to max(3 px, the largest 99th
    percentile)), so rows compare at a glance. Pixels without ground truth (``valid`` 0,
    default: true disparity <= 0) are grey in the truth and the error maps. Each row's title
    gives its EPE and bad-1/bad-3 over the valid pixels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not predictions:
        raise ValueError("no predictions to show: pass at least one {label: disparity}")
    left, truth = (t.detach().float().cpu().reshape(t.shape[-2:]) for t in (left, true_disparity))
    preds = {label: p.detach().float().cpu().reshape(truth.shape) for label, p in predictions.items()}
    valid = (truth > 0) if valid is None else valid.detach().cpu().reshape(truth.shape).bool()
    errors = {label: (pred - truth).abs() for label, pred in preds.items()}
    if valid.any():
        lo, hi = float(truth[valid].min()), float(truth[valid].max())
        err_max = max(3.0, *(float(torch.quantile(e[valid], 0.99)) for e in errors.values()))
    else:
        every = torch.stack(list(preds.values()))
        lo, hi, err_max = float(every.min()), float(every.max()), 3.0
    nan = torch.tensor(float("nan"))
    height, width = left.shape
    rows = len(preds)
    fig, axes = plt.subplots(
        rows, 4, figsize=(4 * 3.2, rows * (3.2 * height / width + 0.5) + 0.5), squeeze=False
    )
    for ax_row, (label, pred) in zip(axes, preds.items(), strict=True):
        prefix = f"{label}: " if label else ""
        panels = [
            ("left image", left, "gray", 0.0, 1.0),
            ("true disparity (px)", torch.where(valid, truth, nan), "magma", lo, hi),
            (f"{prefix}predicted disparity (px)", pred, "magma", lo, hi),
            (f"{prefix}|error| (px)", torch.where(valid, errors[label], nan), "inferno", 0.0, err_max),
        ]
        for ax, (name, image, cmap, vmin, vmax) in zip(ax_row, panels, strict=True):
            colours = plt.get_cmap(cmap).with_extremes(bad="0.6")
            shown = ax.imshow(image.numpy(), cmap=colours, vmin=vmin, vmax=vmax)
            if cmap != "gray":
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=9)
        ax_row[0].set_ylabel(f"{prefix}{_error_stats(pred, truth, valid)}", fontsize=8)
    if rows == 1:
        stats = _error_stats(next(iter(preds.values())), truth, valid)
        fig.suptitle(f"{title}: {stats}" if title else stats, fontsize=10)
    elif title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


class StereoDepthModule(TaskModule):
    """Disparity from the left image; loss(warp(right, disparity), left) and nothing else.

    The paper's point is one loss alone; ``smoothness_weight`` adds Godard's smoothness term for
    comparison (0 by default). Predicted depth is focal * baseline / (disparity + doffs) with
    ``doffs`` 0 unless the batch carries one (Middlebury's principal-point offset), clipped to
    [min_depth, max_depth] as in Godard et al.'s evaluation.

    Test metrics, over valid pixels (true depth finite and > 0), pooled per pixel over the whole
    test split (``deepmi.metrics.depth``): ``test/mae_depth_m`` (the paper's Table 1 metric),
    ``test/abs_rel``, ``test/sq_rel``, ``test/rmse``, ``test/rmse_log``, ``test/delta1..3``;
    with a ``disparity`` entry in the batch (dense ground truth, 0 = unknown) also
    ``test/epe_px``, ``test/bad1_pct``, ``test/bad3_pct``. The baseline predicts one constant
    depth everywhere, the median of the TRAINING split's valid true depths (computed once in
    ``on_test_start`` from the datamodule's train dataset), and logs the same metrics as
    ``test/baseline_<metric>`` plus the median itself as ``test/baseline_median_depth_m``.
    """

    def __init__(
        self,
        *args,
        smoothness_weight: float = 0.0,
        min_depth: float = 1e-3,
        max_depth: float = 80.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if smoothness_weight < 0:
            raise ValueError(f"smoothness_weight must be >= 0, got {smoothness_weight}")
        if not 0 < min_depth < max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth} and {max_depth}")
        self.smoothness_weight = smoothness_weight
        self.min_depth, self.max_depth = min_depth, max_depth
        self.depth_sums = ErrorSums(DEPTH_SUM_KEYS, depth_metrics_from_sums)
        self.disparity_sums = ErrorSums(DISPARITY_SUM_KEYS, disparity_metrics_from_sums)
        self.baseline_depth_sums = ErrorSums(DEPTH_SUM_KEYS, depth_metrics_from_sums)
        self.baseline_disparity_sums = ErrorSums(DISPARITY_SUM_KEYS, disparity_metrics_from_sums)
        self.baseline_depth_m: float | None = None
        self.disparity_example: dict[str, torch.Tensor] | None = None

    def disparity_px(self, left: torch.Tensor) -> torch.Tensor:
        """The network predicts disparity as a fraction of the image width (Godard et al.)."""
        return self.model(left) * left.shape[-1]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        disparity = self.disparity_px(batch["left"])
        reconstructed = warp_right_to_left(batch["right"], disparity)
        loss = self.loss(reconstructed, batch["left"])
        self.log("train/photometric", loss, prog_bar=True)
        if self.smoothness_weight > 0:
            smooth = disparity_smoothness(disparity / batch["left"].shape[-1], batch["left"])
            self.log("train/smoothness", smooth)
            loss = loss + self.smoothness_weight * smooth
        return loss

    @staticmethod
    def _calibration(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """focal * baseline (m px) and doffs (px) per image, shaped (B, 1, 1, 1)."""
        focal_baseline = (batch["focal"] * batch["baseline"]).view(-1, 1, 1, 1)
        doffs = batch.get("doffs")
        doffs = torch.zeros_like(focal_baseline) if doffs is None else doffs.view(-1, 1, 1, 1)
        return focal_baseline, doffs.to(focal_baseline)

    def depth_from_disparity(self, batch: dict[str, torch.Tensor], disparity: torch.Tensor) -> torch.Tensor:
        """focal * baseline / (disparity + doffs), clipped to [min_depth, max_depth]."""
        focal_baseline, doffs = self._calibration(batch)
        return (focal_baseline / (disparity.clamp_min(1e-6) + doffs)).clamp(self.min_depth, self.max_depth)

    def predicted_depth(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.depth_from_disparity(batch, self.disparity_px(batch["left"]))

    def training_depth_median(self) -> float | None:
        """Median valid true depth of the training split (the baseline's constant prediction).

        Read from the datamodule's ``train_set`` (built with its ``dataset_factory`` if testing
        without fitting); None, with a warning, when the trainer has no such datamodule.
        """
        datamodule = getattr(self.trainer, "datamodule", None)
        train_set = getattr(datamodule, "train_set", None)
        if train_set is None and callable(getattr(datamodule, "dataset_factory", None)):
            train_set = datamodule.dataset_factory(split="train")
        if train_set is None:
            log.warning("no training split on the trainer's datamodule: the median-depth baseline is skipped")
            return None
        return split_depth_median(train_set)

    def curve_metrics(self, loader) -> dict[str, float]:
        """Depth MAE, abs rel, RMSE and (with dense truth) EPE, bad-1, bad-3 over a loader.

        For experiments.runner.curves.TestCurve: the learning curve shows when a budget is enough
        (e.g. when the EPE falls below the constant-depth baseline's). Plain sums, not the
        torchmetrics states: every DDP rank evaluates the whole split here, so nothing is synced.
        """
        depth = dict.fromkeys(DEPTH_SUM_KEYS, 0.0)
        disparity = dict.fromkeys(DISPARITY_SUM_KEYS, 0.0)
        for batch in loader:
            batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            predicted = self.disparity_px(batch["left"])
            valid, disparity_valid = _valid_masks(batch)
            predicted_depth = self.depth_from_disparity(batch, predicted)
            for key, value in depth_error_sums(predicted_depth, batch["depth"], valid).items():
                depth[key] += float(value)
            if disparity_valid is not None:
                errors = disparity_error_sums(predicted, batch["disparity"], disparity_valid)
                for key, value in errors.items():
                    disparity[key] += float(value)
        metrics = depth_metrics_from_sums(_as_tensors(depth))
        curve = {name: float(metrics[name]) for name in ("mae_depth_m", "abs_rel", "rmse")}
        if disparity["count"] > 0:
            errors = disparity_metrics_from_sums(_as_tensors(disparity))
            curve.update({name: float(value) for name, value in errors.items()})
        return curve

    def on_test_start(self) -> None:
        super().on_test_start()
        self.baseline_depth_m = self.training_depth_median()
        if self.baseline_depth_m is not None:
            log.info("constant-depth baseline: median training depth %.4f m", self.baseline_depth_m)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        disparity = self.disparity_px(batch["left"])
        depth = self.depth_from_disparity(batch, disparity)
        truth = batch["depth"]
        valid, disparity_valid = _valid_masks(batch)
        self.keep_examples(
            batch_idx, left=batch["left"], right=batch["right"], predicted_depth=depth,
            true_depth=torch.where(valid, truth, torch.zeros_like(truth)),
        )  # fmt: skip
        self.depth_sums.update(depth_error_sums(depth, truth, valid))
        true_disparity = batch.get("disparity")
        if true_disparity is not None:
            self.disparity_sums.update(disparity_error_sums(disparity, true_disparity, disparity_valid))
            if batch_idx == 0:
                self.disparity_example = {
                    "left": batch["left"][0, 0].detach().cpu(),
                    "true_disparity": true_disparity[0, 0].detach().cpu(),
                    "predicted_disparity": disparity[0, 0].detach().cpu(),
                    "valid": disparity_valid[0, 0].detach().cpu(),
                }
        if self.baseline_depth_m is not None:
            constant = truth.new_full(truth.shape, self.baseline_depth_m).clamp(
                self.min_depth, self.max_depth
            )
            self.baseline_depth_sums.update(depth_error_sums(constant, truth, valid))
            if true_disparity is not None:
                focal_baseline, doffs = self._calibration(batch)
                constant_disparity = (focal_baseline / constant - doffs).expand_as(constant)
                self.baseline_disparity_sums.update(
                    disparity_error_sums(constant_disparity, true_disparity, disparity_valid)
                )

    def on_test_epoch_end(self) -> None:
        metrics: dict[str, torch.Tensor] = {}
        pairs = [("", self.depth_sums), ("", self.disparity_sums)]
        if self.baseline_depth_m is not None:
            pairs += [("baseline_", self.baseline_depth_sums), ("baseline_", self.baseline_disparity_sums)]
            metrics["test/baseline_median_depth_m"] = torch.tensor(self.baseline_depth_m, dtype=torch.float64)
        for prefix, sums in pairs:
            if sums.update_called:
                metrics.update({f"test/{prefix}{name}": value for name, value in sums.compute().items()})
            sums.reset()
        self.log_dict({name: value.float() for name, value in metrics.items()})

    def on_test_end(self) -> None:
        super().on_test_end()
        example, self.disparity_example = self.disparity_example, None
        if example is not None and self.trainer.is_global_zero and not self.trainer.fast_dev_run:
            path = Path(self.trainer.default_root_dir) / "disparity_panel.png"
            save_disparity_panel(path, **example, title="first test image")
