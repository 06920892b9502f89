"""Benchmark MIGE's cost: SSGE time against batch size M, fast vs naive, and a training-step ratio.

    python scripts/bench_mige.py                 # SSGE table + training step of the DCGAN encoder
    python scripts/bench_mige.py --quick         # smaller sizes, a few seconds

1. ``bench_ssge``: ``ssge_score`` (regrouped, no (M, M, d) tensor) against a naive broadcast
   implementation of the same estimator, side by side in one process, as ratios to the smallest M
   (one ``eigh`` of the M x M Gram: ~O(M^3)) and naive/fast.
2. ``bench_training_step(encoder_factory)``: one optimizer step (forward, backward, step) of an
   encoder trained with each DIM objective, as a ratio to JSD; ``main`` uses Deep InfoMax's DCGAN
   encoder (MIGE Table 1).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# isort: off
# before torch: sets OMP_WAIT_POLICY=passive. Measured on a shared 2-core machine: with OpenMP's
# default spin-waiting, eigh on 2 threads stalls (0.2 s at M=64, 1.5 s at M=128, against 0.001 s
# on 1 thread) whenever other processes hold the cores.
import experiments  # noqa: F401

# isort: on
import torch
from torch import Tensor, nn

from deepmi.estimators import build_objective, median_bandwidth, rbf_gram, ssge_score


def naive_ssge(samples: Tensor, n_eigen: int) -> Tensor:
    """Shi et al.'s SSGE written with the (M, M, d) tensor of kernel gradients (the reference cost)."""
    m = samples.shape[0]
    sigma = median_bandwidth(samples)
    gram = rbf_gram(samples, samples, sigma)
    lam, u = torch.linalg.eigh(gram)
    lam, u = lam.flip(-1)[:n_eigen], u.flip(-1)[:, :n_eigen]
    diff = samples[:, None, :] - samples[None, :, :]
    grad_gram = -diff / sigma**2 * gram[..., None]  # d/dx_k k(x_k, x_m)
    grad_psi = math.sqrt(m) * torch.einsum("kmd,mj->kjd", grad_gram, u) / lam[None, :, None]
    beta = -grad_psi.mean(0)
    psi = math.sqrt(m) * gram @ u / lam
    return psi @ beta


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocations, lazy init)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    # The minimum: on a shared machine the other repeats measure the neighbours, not the code.
    return min(times)


def bench_ssge(ms: Sequence[int], d: int = 64, naive_max_m: int = 1024, repeats: int = 3) -> list[dict]:
    """Time fast and naive SSGE (float32, n_eigen fixed at M/4 so both do identical work)."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    for m in ms:
        x = torch.randn(m, d, generator=gen)
        j = max(m // 4, 1)
        fast = _time(lambda x=x, j=j: ssge_score(x, n_eigen=j), repeats)
        naive = _time(lambda x=x, j=j: naive_ssge(x, j), repeats) if m <= naive_max_m else float("nan")
        rows.append({"M": m, "fast_s": fast, "naive_s": naive})
    base = rows[0]["fast_s"]
    print(f"SSGE, d={d}, float32, {torch.get_num_threads()} threads, best of {repeats}")
    print(f"{'M':>6} {'fast s':>9} {'fast/M0':>8} {'naive s':>9} {'naive/fast':>10}")
    for r in rows:
        fast, naive = r["fast_s"], r["naive_s"]
        print(f"{r['M']:>6} {fast:>9.4f} {fast / base:>8.1f} {naive:>9.4f} {naive / fast:>10.1f}")
    return rows


DEFAULT_OBJECTIVES = {
    "jsd": {},
    "infonce": {},
    "mige": {},
    "mige_rp128": {"project_dim": 128},
}


def bench_training_step(
    encoder_factory: Callable[[], nn.Module],
    objectives: dict[str, dict] | None = None,
    batch_size: int = 64,
    image_shape: tuple[int, int, int] = (3, 32, 32),
    repeats: int = 5,
) -> dict[str, float]:
    """Seconds per optimizer step of ``encoder_factory()`` trained with each DIM objective.

    Args:
        encoder_factory: builds a fresh encoder mapping (B, *image_shape) images to (B, K) codes.
        objectives: display name -> kwargs; the registry name is the display name up to ``_rp``.
    Returns:
        display name -> best seconds per step (forward, objective, backward, Adam step).
    """
    objectives = DEFAULT_OBJECTIVES if objectives is None else objectives
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, *image_shape, generator=gen)
    x_dim = math.prod(image_shape)
    results = {}
    for label, kwargs in objectives.items():
        torch.manual_seed(0)
        encoder = encoder_factory()
        with torch.no_grad():
            z_dim = encoder(images[:2]).flatten(1).shape[1]
        name = label.split("_rp")[0]
        if name in ("mige",):
            objective = build_objective(name, **kwargs)
        else:
            objective = build_objective(name, x_dim=x_dim, z_dim=z_dim, **kwargs)
        opt = torch.optim.Adam([*encoder.parameters(), *objective.main_parameters()], lr=1e-4)

        def step(encoder=encoder, objective=objective, opt=opt):
            opt.zero_grad(set_to_none=True)
            out = objective(images, encoder(images))
            out["loss"].backward()
            opt.step()

        results[label] = _time(step, repeats)
    base_label = next(iter(results))
    print(f"training step, batch {batch_size}, {torch.get_num_threads()} threads, best of {repeats}")
    for label, seconds in results.items():
        print(f"{label:>12} {seconds * 1e3:>9.1f} ms {seconds / results[base_label]:>6.2f}x {base_label}")
    return results


class _CodeOnly(nn.Module):
    """DCGANEncoder returns all feature levels; the objectives here take the code Y."""

    def __init__(self) -> None:
        super().__init__()
        from deepmi.models import DCGANEncoder

        self.encoder = DCGANEncoder()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images).y


def dcgan_y_encoder() -> nn.Module:
    return _CodeOnly()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--ms", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    parser.add_argument("--naive-max", type=int, default=1024, help="no naive run above this M (memory)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="M up to 512, fewer repeats")
    parser.add_argument(
        "--out-dir", type=Path, default=None,
        help="also write ssge.csv and training_step.csv there (e.g. results/benchmarks/mige)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ms = [m for m in args.ms if m <= 512] if args.quick else args.ms
    repeats = 1 if args.quick else args.repeats
    ssge_rows = bench_ssge(ms, d=args.d, naive_max_m=args.naive_max, repeats=repeats)
    print()
    # the encoder of MIGE Table 1 (Deep InfoMax's DCGAN), its Y(64) output as the code
    print("DCGAN encoder (MIGE Table 1), x = the image for every objective:")
    step_repeats = 2 if args.quick else 5
    steps = bench_training_step(dcgan_y_encoder, repeats=step_repeats)
    if args.out_dir is not None:
        write_csvs(args.out_dir, ssge_rows, steps, args.d, repeats, step_repeats)


def write_csvs(out_dir: Path, ssge_rows: list[dict], steps: dict[str, float], d: int, repeats: int,
               step_repeats: int) -> None:  # fmt: skip
    """The two tables as CSV, every row stamped with the machine, threads and torch version."""
    from experiments.runner.environment import environment_info

    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment_info()  # what a run record says of its machine
    # the 1-minute load average says whether other work shared the cores during the measurement
    machine = [env["device"], env["torch_threads"], env["torch"], f"{os.getloadavg()[0]:.1f}"]
    with (out_dir / "ssge.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "M",
                "d",
                "fast (s)",
                "naive (s)",
                "naive / fast",
                "best of",
                "device",
                "threads",
                "torch",
                "load",
            ]
        )
        for r in ssge_rows:
            ratio = r["naive_s"] / r["fast_s"]
            naive = "not run" if math.isnan(r["naive_s"]) else f"{r['naive_s']:.4g}"
            ratio_text = "" if math.isnan(ratio) else f"{ratio:.1f}"
            writer.writerow([r["M"], d, f"{r['fast_s']:.4g}", naive, ratio_text, repeats, *machine])
    base = next(iter(steps))
    with (out_dir / "training_step.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["objective", "ms per step", f"ratio to {base}", "best of", "device", "threads", "torch", "load"]
        )
        for label, seconds in steps.items():
            writer.writerow(
                [label, f"{seconds * 1e3:.1f}", f"{seconds / steps[base]:.2f}", step_repeats, *machine]
            )
    print(f"wrote {out_dir / 'ssge.csv'} and {out_dir / 'training_step.csv'}")


if __name__ == "__main__":
    main()
