"""MIGE toy experiment (MIGE Sec. 4.1, Fig. 1): MI gradients of correlated Gaussians.

x, y in R^d with ``corr(x_i, y_j) = delta_ij rho`` (Eq. 20), sampled by reparameterisation
``y = rho x + sqrt(1 - rho^2) eps`` so that every estimate can be differentiated w.r.t. rho. The truth is
``I = -d/2 log(1 - rho^2)`` and ``dI/drho = rho d / (1 - rho^2)``.

- MINE (DV bound with the moving-average gradient correction) and MINE-f (NWJ bound): a separable
  critic (two MLPs, as in the authors' released notebook) is trained *from scratch at every rho* for
  ``mine_steps`` Adam steps on fresh batches; then the bound on one fresh batch of ``mine_batch``
  samples is the MI estimate and its autograd derivative w.r.t. rho the gradient estimate.
- MIGE: ``mige_mi_surrogate(x, y)`` on ``n_samples`` samples, backpropagated to rho.

Defaults follow the paper (d = 5, 10, 20) and the authors' released notebook for what the paper does
not state (rho in [-0.8, 0.8], 256 samples, 200 Adam steps at lr 1e-4, 512 hidden units, 20-d critic
embeddings, SSGE threshold 0.99). ``TINY_CONFIG`` runs in seconds for the tests.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from deepmi.estimators import (
    CriticMIEstimator,
    SeparableCritic,
    dv_bound,
    mige_mi_surrogate,
    nwj_bound,
)

__all__ = ["CSV_COLUMNS", "ESTIMATORS", "TINY_CONFIG", "MIGEToyTask", "sample_correlated_gaussian"]

CSV_COLUMNS = ["d", "rho", "estimator", "mi", "grad", "true_mi", "true_grad"]
ESTIMATORS = ("mine", "mine_f", "mige")
_LABELS = {"mine": "MINE", "mine_f": "MINE-$f$", "mige": "MIGE"}
_COLORS = {"true": "C0", "mine": "C1", "mine_f": "C2", "mige": "C3"}

TINY_CONFIG = {
    "dims": [5],
    "rhos": [-0.6, -0.2, 0.2, 0.6],
    "n_samples": 256,
    "mine_steps": 5,
    "mine_batch": 32,
    "hidden_dim": 16,
    "embed_dim": 4,
    "show_progress": False,
}


def sample_correlated_gaussian(d: int, rho: torch.Tensor, n: int, generator: torch.Generator):
    """(x, y) with y = rho x + sqrt(1 - rho^2) eps: differentiable in rho (Eq. 20)."""
    x = torch.randn(n, d, generator=generator, dtype=rho.dtype)
    eps = torch.randn(n, d, generator=generator, dtype=rho.dtype)
    return x, rho * x + torch.sqrt(1 - rho * rho) * eps


def true_mi(d: int, rho: float) -> float:
    return -0.5 * d * math.log(1 - rho * rho)


def true_grad(d: int, rho: float) -> float:
    return rho * d / (1 - rho * rho)


class MIGEToyTask:
    """Fig. 1 of MIGE. Constructor arguments are plain numbers/lists so Hydra can set them.

    Args:
        dims: dimensions d of x and y.
        rhos: explicit correlation grid; if None, ``n_rhos`` points evenly over [rho_min, rho_max].
        n_samples: MIGE's sample size (the SSGE batch).
        mine_steps, mine_batch, lr: critic training for MINE / MINE-f (per rho, from scratch).
        hidden_dim, embed_dim: critic MLP width and embedding size.
        ema_decay: MINE's moving-average decay for the bias-corrected gradient.
        eigen_threshold: SSGE eigenvalue share kept by MIGE.
        seed: base seed; every (d, rho, estimator) gets its own derived generator.
    """

    def __init__(
        self,
        dims: Sequence[int] = (5, 10, 20),
        rhos: Sequence[float] | None = None,
        rho_min: float = -0.8,
        rho_max: float = 0.8,
        n_rhos: int = 33,
        n_samples: int = 256,
        mine_steps: int = 200,
        mine_batch: int = 256,
        lr: float = 1e-4,
        hidden_dim: int = 512,
        embed_dim: int = 20,
        ema_decay: float = 0.99,
        eigen_threshold: float = 0.99,
        seed: int = 0,
        show_progress: bool = True,
    ) -> None:
        self.dims = [int(d) for d in dims]
        grid = np.linspace(rho_min, rho_max, int(n_rhos)) if rhos is None else np.asarray(list(rhos), float)
        self.rhos = [round(float(r), 10) for r in grid]  # -0.6, not linspace's -0.6000000000000001
        if not self.dims or min(self.dims) < 1:
            raise ValueError(f"dims must be positive ints, got {dims}")
        if not self.rhos or max(abs(r) for r in self.rhos) >= 1:
            raise ValueError(f"every rho must lie in (-1, 1), got {self.rhos}")
        if n_samples < 3 or mine_batch < 2 or mine_steps < 0:
            raise ValueError("need n_samples >= 3, mine_batch >= 2 and mine_steps >= 0")
        self.n_samples, self.mine_steps, self.mine_batch, self.lr = n_samples, mine_steps, mine_batch, lr
        self.hidden_dim, self.embed_dim, self.ema_decay = hidden_dim, embed_dim, ema_decay
        self.eigen_threshold, self.seed, self.show_progress = eigen_threshold, seed, show_progress

    def _seed(self, d: int, i: int, estimator: str) -> int:
        return self.seed * 1_000_003 + d * 10_007 + i * 101 + ESTIMATORS.index(estimator)

    def critic_estimate(self, d: int, rho: float, estimator: str, seed: int) -> tuple[float, float]:
        """Train a fresh critic at this rho; return (MI estimate, d estimate / d rho) on a fresh batch."""
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            critic = SeparableCritic(d, d, self.hidden_dim, self.embed_dim)
        bound_name = "mine" if estimator == "mine" else "nwj"
        est = CriticMIEstimator(critic, bound=bound_name, ema_decay=self.ema_decay)
        opt = torch.optim.Adam(est.parameters(), lr=self.lr)
        fixed_rho = torch.tensor(rho)
        for _ in range(self.mine_steps):
            x, y = sample_correlated_gaussian(d, fixed_rho, self.mine_batch, gen)
            opt.zero_grad(set_to_none=True)
            (-est(x, y)).backward()
            opt.step()
        # The plain bound's value and slope in rho (MINE's correction only changes training gradients).
        rho_t = torch.tensor(rho, requires_grad=True)
        x, y = sample_correlated_gaussian(d, rho_t, self.mine_batch, gen)
        bound = dv_bound if estimator == "mine" else nwj_bound
        value = bound(critic(x, y))
        (grad,) = torch.autograd.grad(value, rho_t)
        return float(value.detach()), float(grad)

    def mige_estimate(self, d: int, rho: float, seed: int) -> float:
        gen = torch.Generator().manual_seed(seed)
        rho_t = torch.tensor(rho, requires_grad=True)
        x, y = sample_correlated_gaussian(d, rho_t, self.n_samples, gen)
        (grad,) = torch.autograd.grad(mige_mi_surrogate(x, y, eigen_threshold=self.eigen_threshold), rho_t)
        return float(grad)

    def rows(self) -> tuple[list[dict[str, float | int | str]], dict[str, float]]:
        """Every (d, rho, estimator) row and the seconds spent per estimator."""
        rows: list[dict[str, float | int | str]] = []
        seconds = dict.fromkeys(ESTIMATORS, 0.0)
        pairs = [(d, i, r) for d in self.dims for i, r in enumerate(self.rhos)]
        for d, i, rho in tqdm(pairs, desc="mige toy (d, rho)", disable=not self.show_progress):
            truth = {"d": d, "rho": rho, "true_mi": true_mi(d, rho), "true_grad": true_grad(d, rho)}
            for estimator in ESTIMATORS:
                start = time.perf_counter()
                if estimator == "mige":
                    mi, grad = float("nan"), self.mige_estimate(d, rho, self._seed(d, i, estimator))
                else:
                    mi, grad = self.critic_estimate(d, rho, estimator, self._seed(d, i, estimator))
                seconds[estimator] += time.perf_counter() - start
                rows.append({**truth, "estimator": estimator, "mi": mi, "grad": grad})
        return rows, seconds

    def summarize(self, rows: list[dict], seconds: dict[str, float]) -> dict[str, float]:
        summary: dict[str, float] = {}
        for estimator in ESTIMATORS:
            for d in self.dims:
                sel = [r for r in rows if r["estimator"] == estimator and r["d"] == d]
                grad_err = np.array([r["grad"] - r["true_grad"] for r in sel])
                summary[f"grad_rmse/{estimator}/d{d}"] = float(np.sqrt(np.mean(grad_err**2)))
                if estimator != "mige":
                    mi_err = np.array([r["mi"] - r["true_mi"] for r in sel])
                    summary[f"mi_rmse/{estimator}/d{d}"] = float(np.sqrt(np.mean(mi_err**2)))
            summary[f"seconds/{estimator}"] = seconds[estimator]
        return summary

    def plot(self, rows: list[dict], path: Path) -> None:
        """Fig. 1 layout: top row MI vs rho, bottom row gradient vs rho, one column per d."""
        from matplotlib.figure import Figure  # no pyplot: no global backend state

        n = len(self.dims)
        fig = Figure(figsize=(3.8 * n, 7.2))
        axes = fig.subplots(2, n, squeeze=False, sharex=True)
        lo, hi = min(self.rhos), max(self.rhos)
        dense = np.linspace(lo, hi, 256)
        for col, d in enumerate(self.dims):
            top, bottom = axes[0, col], axes[1, col]
            top.plot(dense, -0.5 * d * np.log(1 - dense**2), color=_COLORS["true"], label="True MI")
            bottom.plot(dense, dense * d / (1 - dense**2), color=_COLORS["true"], label="True gradient")
            for estimator in ESTIMATORS:
                sel = [r for r in rows if r["estimator"] == estimator and r["d"] == d]
                sel.sort(key=lambda r: r["rho"])
                rho = [r["rho"] for r in sel]
                style = {"color": _COLORS[estimator], "marker": ".", "linewidth": 1.2}
                if estimator != "mige":
                    top.plot(rho, [r["mi"] for r in sel], label=_LABELS[estimator], **style)
                grad_label = rf"$\nabla_\rho$ {_LABELS[estimator]}"
                bottom.plot(rho, [r["grad"] for r in sel], label=grad_label, **style)
            top.set_title(f"d = {d}")
            bottom.set_xlabel(r"$\rho$")
            for ax in (top, bottom):
                ax.grid(True, linestyle="-.", alpha=0.6)
            if col == 0:
                top.set_ylabel("Mutual information")
                bottom.set_ylabel("Gradient")
                top.legend(loc="upper center", fontsize=8)
                bottom.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)

    def run(self, output_dir: Path) -> dict[str, float]:
        """Write mige_toy.csv and mige_toy.png into output_dir; return the error summary."""
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        rows, seconds = self.rows()
        with open(output_dir / "mige_toy.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        self.plot(rows, output_dir / "mige_toy.png")
        return self.summarize(rows, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description="MIGE Fig. 1 (toy) without Hydra")
    parser.add_argument("--out", type=Path, default=Path("outputs/mige_toy"))
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke configuration")
    parser.add_argument("--dims", type=int, nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kwargs = dict(TINY_CONFIG) if args.tiny else {}
    if args.dims:
        kwargs["dims"] = args.dims
    start = time.perf_counter()
    summary = MIGEToyTask(**kwargs).run(args.out)
    summary["seconds/total"] = time.perf_counter() - start
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
