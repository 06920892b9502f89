"""Forward+backward speed and peak extra memory of the deepmi losses against L1 and MONAI's MI.

    python scripts/bench_losses.py                       # (8, 1, 192, 640), N = 25, 2 threads
    python scripts/bench_losses.py --threads 1 --repeats 9 --no-monai
    python scripts/bench_losses.py --device cuda         # a separate GPU table (skipped without one)
    python scripts/bench_losses.py --profile "LMILoss compiled" --no-monai   # where its time goes
    python scripts/bench_losses.py --volume 64 64 64 128 128 128 --threads 1 --bins 32 --clock cpu
                                                         # 3D volumes (1, 1, D, H, W), every kernel,
                                                         # masked and not, against MONAI's two kernels

Times are medians over interleaved rounds (every case once per round, in turn), reported as
ratios to L1 and to MONAI's GlobalMutualInformationLoss measured in the same rounds: shared
machines are noisy, so only the ratios are meant to be compared. Memory is the peak of bytes
held by the CPU allocator above the level at the start of one forward+backward call (inputs
excluded, the returned gradient included), read from torch.profiler's memory events (on a GPU:
the CUDA allocator's peak). The "aim" column is issue #16's target for that ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import torch

from deepmi.losses import L1Loss, L2Loss, LMILoss, MILoss, NMILoss, SSIMLoss
from deepmi.losses._checks import check_pair

Step = Callable[[], None]

# issue #16's targets: (column, comparison, value)
AIMS: dict[str, tuple[str, str, float]] = {
    "LMILoss eager": ("x L1", "<=", 2.0),
    "LMILoss compiled": ("x L1", "<=", 1.1),
    "MILoss linear eager": ("x L1", "<=", 4.0),
    "SSIMLoss": ("x L1", "<=", 5.0),
    "MILoss gaussian": ("MONAI/ours", ">=", 50.0),
}


def make_step(
    loss: torch.nn.Module, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> Step:
    def step() -> None:
        pred.grad = None
        (loss(pred, target) if mask is None else loss(pred, target, mask=mask)).backward()

    return step


# the volume table's aims (issue #30): every deepmi MI kernel, masked too, against MONAI's gaussian
VOLUME_AIMS = "time <= 0.1x MONAI gaussian and extra peak memory <= 5 % of MONAI gaussian's"
MONAI_G, MONAI_B = "MONAI GlobalMI gaussian", "MONAI GlobalMI b-spline"


def brain_mask(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """An ellipsoid filling about half of the volume, as a brain mask does."""
    axes = [torch.linspace(-1, 1, n, device=device) for n in shape[2:]]
    grid = torch.meshgrid(*axes, indexing="ij")
    r2 = sum((g / 0.98) ** 2 for g in grid)
    return (r2 <= 1.0).view(shape)


def volume_cases(bins: int, monai: bool) -> list[tuple[str, torch.nn.Module, bool]]:
    """(name, loss, masked) for the 3D table: L1, L_LMI and each MI kernel, masked and not, MONAI."""
    cases: list[tuple[str, torch.nn.Module, bool]] = [("L1Loss", L1Loss(), False)]
    for masked in (False, True):
        tag = " masked" if masked else ""
        cases += [
            (f"LMILoss{tag}", LMILoss(bins), masked),
            (f"MILoss linear{tag}", MILoss(bins), masked),
            (f"MILoss gaussian{tag}", MILoss(bins, kernel="gaussian"), masked),
            (f"MILoss bspline{tag}", MILoss(bins, value_range="auto", kernel="bspline"), masked),
            (f"NMILoss linear{tag}", NMILoss(bins), masked),
        ]
    if monai:
        try:
            from monai.losses import GlobalMutualInformationLoss

            cases.append((MONAI_G, GlobalMutualInformationLoss(kernel_type="gaussian", num_bins=bins), False))
            cases.append((MONAI_B, GlobalMutualInformationLoss(kernel_type="b-spline", num_bins=bins), False))
        except ImportError:
            print("monai not installed: no MONAI column", file=sys.stderr)
    return cases


def volume_inputs(size: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """(pred, target, mask) of shape (1, 1, D, H, W), the same in every process."""
    shape = (1, 1, *size)
    torch.manual_seed(0)
    target = torch.rand(shape, device=device)
    pred = (0.7 * target + 0.3 * torch.rand(shape, device=device)).requires_grad_()
    return pred, target, brain_mask(shape, device)


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def rss_probe(name: str, size: tuple[int, ...], args: argparse.Namespace) -> None:
    """In a fresh process: how far one call of case ``name`` lifts the peak resident set above the
    resident set before it (inputs built). Printed as ``RSS_EXTRA_KIB <n>`` for :func:`rss_extra_mib`.

    On Linux the peak (VmHWM) is reset to the current resident set first (``/proc/self/clear_refs``),
    so neither import-time peaks nor the parent's peak (``ru_maxrss`` survives fork and exec) hide it.
    """
    import resource

    torch.set_num_threads(args.threads)
    pred, target, mask = volume_inputs(size, torch.device("cpu"))
    cases = volume_cases(args.bins, monai=name.startswith("MONAI"))  # import MONAI only for its rows
    loss, masked = {n: (loss, masked) for n, loss, masked in cases}[name]
    step = make_step(loss, pred, target, mask if masked else None)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to VmRSS
        before = _proc_status_kib("VmRSS")
        step()
        extra = _proc_status_kib("VmHWM") - before
    except OSError:  # not Linux: ru_maxrss, a lower bound (earlier peaks can hide the step's)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step()
        extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(f"RSS_EXTRA_KIB {extra}")


def rss_extra_mib(name: str, size: tuple[int, ...], args: argparse.Namespace) -> float:
    """:func:`rss_probe` of one case in a child process (ru_maxrss only grows, so one per case)."""
    import subprocess

    cmd = [sys.executable, __file__, "--rss-probe", name, "--volume", *map(str, size)]
    cmd += ["--bins", str(args.bins), "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return int(out.split("RSS_EXTRA_KIB")[1].split()[0]) / 1024


def bench_volume(size: tuple[int, int, int], args: argparse.Namespace, clock: Callable[[], float]) -> None:
    """One 3D table: median time and extra peak memory per case, as ratios to L1 and MONAI."""
    from tqdm import tqdm

    device = torch.device(args.device)
    pred, target, mask = volume_inputs(size, device)
    cases = volume_cases(args.bins, not args.no_monai)
    steps = {name: make_step(loss, pred, target, mask if masked else None) for name, loss, masked in cases}
    times: dict[str, list[float]] = {name: [] for name in steps}
    mib: dict[str, float] = {}
    rss: dict[str, float] = {}
    calls = len(steps) * (1 + args.repeats + (0 if args.no_memory else 1) + (1 if args.rss else 0))
    with tqdm(total=calls, desc=f"1x1x{'x'.join(map(str, size))}", unit="call", file=sys.stderr) as bar:
        for step in steps.values():  # warm-up (one call each)
            step()
            bar.update()
        for _ in range(args.repeats):  # interleaved rounds
            for name, step in steps.items():
                t0 = clock()
                step()
                times[name].append(clock() - t0)
                bar.update()
        if not args.no_memory:
            for name, step in steps.items():
                mib[name] = peak_extra_bytes(step, device) / 2**20
                bar.update()
        if args.rss:
            for name in steps:
                rss[name] = rss_extra_mib(name, size, args)
                bar.update()

    def ratio(name: str, ref: str) -> float | None:
        if ref not in times:
            return None
        return statistics.median(a / b for a, b in zip(times[name], times[ref], strict=True))

    voxels = target.numel()
    print(
        f"\nvolume 1 x 1 x {' x '.join(map(str, size))} ({voxels / 1e6:.2f} M voxels), bins={args.bins}, "
        f"mask: an ellipsoid of {mask.float().mean().item():.0%} of the voxels, "
        f"threads={torch.get_num_threads()}, clock={args.clock}, {args.repeats} rounds, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    cols = ("median s", "x L1", "x MONAI-g", "MiB", "% MONAI-g", "% MONAI-b")
    if args.rss:
        cols += ("RSS MiB", "% MONAI-g", "% MONAI-b")
    cols += ("aim met",)
    head = f"{'loss (forward+backward)':26s} " + " ".join(f"{c:>10s}" for c in cols)
    print(head)
    print("-" * len(head))
    for name in steps:
        x_monai = ratio(name, MONAI_G)
        mem = mib.get(name)

        def share(ref: str, table: dict[str, float], name: str = name) -> str:
            if name not in table or ref not in table:
                return "-"
            return f"{100 * table[name] / max(table[ref], 1e-9):.1f}"

        # the aim's memory: the RSS growth when measured (the measure), else the allocator's
        table = rss if args.rss else mib
        met = "-"
        if name.startswith(("MILoss", "NMILoss")) and x_monai is not None and table.get(MONAI_G, 0) > 0:
            met = "yes" if x_monai <= 0.1 and table[name] <= 0.05 * table[MONAI_G] else "NO"
        cells = (
            f"{statistics.median(times[name]):.3f}",
            fmt_ratio(ratio(name, "L1Loss")),
            fmt_ratio(x_monai),
            "-" if mem is None else f"{mem:.1f}",
            share(MONAI_G, mib),
            share(MONAI_B, mib),
        )
        if args.rss:
            cells += (f"{rss[name]:.1f}", share(MONAI_G, rss), share(MONAI_B, rss))
        cells += (met,)
        print(f"{name:26s} " + " ".join(f"{c:>10s}" for c in cells))
    print(f"aim (issue #30, MI rows): {VOLUME_AIMS}")


def peak_extra_bytes(step: Step, device: torch.device) -> int:
    """Peak allocator bytes above the starting level during one call of ``step``."""
    from torch.profiler import ProfilerActivity, profile

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    finally:
        os.remove(path)
    live = peak = 0
    for e in sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"]):
        live += int(e["args"]["Bytes"])  # negative for frees; frees of older blocks are not reported
        peak = max(peak, live)
    return peak


def _profiled_ops(step: Step, calls: int) -> list:
    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in (1, calls):  # a throwaway session first: the profiler's first events carry its start-up
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(n):
                    step()
    return sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)


def profile_table(name: str, step: Step, l1_step: Step, calls: int, top: int = 12) -> str:
    """torch.profiler's ops of ``calls`` calls of ``step``: self time per call, and x L1.

    Self time excludes children, so the rows add up to the call; an inductor kernel shows as its
    compiled region. L1 is profiled the same way right after, so the ratios compare two profiled
    runs under the same load (the profiler's own overhead inflates both).
    """
    rows = _profiled_ops(step, calls)
    l1_ms = sum(e.self_cpu_time_total for e in _profiled_ops(l1_step, calls)) / 1e3 / calls
    total_ms = sum(e.self_cpu_time_total for e in rows) / 1e3 / calls
    lines = [
        f"profile of {name!r}: {total_ms:.2f} ms per call = {total_ms / l1_ms:.2f}x L1 "
        f"(L1 {l1_ms:.2f} ms per call, both under the profiler, {calls} calls each)",
        f"  {'op (self time)':58s} {'ms/call':>8s} {'x L1':>6s} {'calls/call':>10s}",
    ]
    for e in rows[:top]:
        ms = e.self_cpu_time_total / 1e3 / calls
        lines.append(f"  {e.key[:58]:58s} {ms:8.3f} {ms / l1_ms:6.2f} {e.count / calls:10.1f}")
    rest = sum(e.self_cpu_time_total for e in rows[top:]) / 1e3 / calls
    lines.append(f"  {'(every other op)':58s} {rest:8.3f} {rest / l1_ms:6.2f}")
    return "\n".join(lines)


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else (f"{v:.3f}" if v < 0.1 else f"{v:.2f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--bins", type=int, default=25)
    ap.add_argument("--shape", type=int, nargs=4, default=[8, 1, 192, 640], metavar=("B", "C", "H", "W"))
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--no-monai", action="store_true", help="skip MONAI (it takes ~1 s per call)")
    ap.add_argument("--no-gaussian", action="store_true", help="skip MILoss(kernel='gaussian')")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    ap.add_argument(
        "--rss",
        action="store_true",
        help="--volume: also how far one call lifts the peak resident set (VmHWM), each case in a "
        "fresh process (the allocator's peak misses memory held outside torch's allocator)",
    )
    ap.add_argument("--rss-probe", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda; cuda is skipped without a GPU")
    ap.add_argument(
        "--volume",
        type=int,
        nargs="+",
        default=[],
        metavar="D H W",
        help="3D mode: one table per volume (1, 1, D, H, W), triples in a row, e.g. 64 64 64 128 128 128",
    )
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: time.perf_counter (default); cpu: this process's CPU time, which other processes "
        "on a busy machine do not inflate (meaningful with --threads 1)",
    )
    ap.add_argument(
        "--profile",
        nargs="+",
        default=[],
        metavar="CASE",
        help="after the table, torch.profiler's top ops of these cases (names as in the table)",
    )
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here; skipping the GPU table")
        return

    torch.set_num_threads(args.threads)
    if args.volume:
        if len(args.volume) % 3:
            raise SystemExit(f"--volume takes sizes in triples D H W, got {args.volume}")
        if args.rss_probe:
            rss_probe(args.rss_probe, tuple(args.volume[:3]), args)
            return
        base = time.perf_counter if args.clock == "wall" else time.process_time
        print(f"torch {torch.__version__}, device={device}, threads={torch.get_num_threads()}")
        for i in range(0, len(args.volume), 3):
            bench_volume(tuple(args.volume[i : i + 3]), args, base)
        return
    torch.manual_seed(0)
    target = torch.rand(*args.shape, device=device)
    pred = (0.7 * target + 0.3 * torch.rand(*args.shape, device=device)).requires_grad_()
    n = args.bins

    cases: dict[str, torch.nn.Module] = {"L1Loss": L1Loss(), "L2Loss": L2Loss(), "SSIMLoss": SSIMLoss()}
    cases["LMILoss eager"] = LMILoss(n)
    if not args.no_compile:
        cases["LMILoss compiled"] = LMILoss(n, compile=True)
    cases["LMILoss histogram"] = LMILoss(n, method="histogram")
    cases["MILoss linear eager"] = MILoss(n)
    if not args.no_compile:
        cases["MILoss linear compiled"] = MILoss(n, compile=True)
    if not args.no_gaussian:
        cases["MILoss gaussian"] = MILoss(n, kernel="gaussian")
    if not args.no_monai:
        try:
            from monai.losses import GlobalMutualInformationLoss

            cases["MONAI GlobalMI (gaussian)"] = GlobalMutualInformationLoss(
                kernel_type="gaussian", num_bins=n
            )
        except ImportError:
            print("monai not installed: no MONAI column", file=sys.stderr)
    steps = {name: make_step(loss, pred, target) for name, loss in cases.items()}
    for name in args.profile:  # before any timing: a typo should not cost a whole benchmark
        if name not in steps:
            raise SystemExit(f"--profile {name!r}: no such case; the cases are {', '.join(steps)}")

    base_clock = time.perf_counter if args.clock == "wall" else time.process_time
    if device.type == "cuda":  # time the kernels, not their launches

        def clock() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()
    else:
        clock = base_clock
    print(
        f"torch {torch.__version__}, device={device}, threads={torch.get_num_threads()}, "
        f"shape={tuple(args.shape)}, bins={n}, "
        f"clock={args.clock}, load average at start {os.getloadavg()[0]:.2f}"
    )
    warm: dict[str, float] = {}
    for name, step in steps.items():  # the first calls compile; time them apart
        t0 = time.perf_counter()
        step()
        step()
        warm[name] = time.perf_counter() - t0

    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            t0 = clock()
            step()
            times[name].append(clock() - t0)

    def ratio(name: str, ref: str) -> float | None:
        if ref not in times:
            return None
        return statistics.median(a / b for a, b in zip(times[name], times[ref], strict=True))

    mib = {}
    if not args.no_memory:
        for name, step in steps.items():
            mib[name] = peak_extra_bytes(step, device) / 2**20
    ref_mi = "MONAI GlobalMI (gaussian)"
    cols = ("median ms", "x L1", "x MONAI", "MONAI/ours", "peak MiB", "warm-up s", "aim", "met")
    head = f"{'loss (forward+backward)':28s} " + " ".join(f"{c:>10s}" for c in cols)
    print(head)
    print("-" * len(head))
    for name in steps:
        x_monai = ratio(name, ref_mi)
        measured = {"x L1": ratio(name, "L1Loss"), "MONAI/ours": None if x_monai is None else 1 / x_monai}
        aim, met = "-", "-"
        if name in AIMS:
            column, op, value = AIMS[name]
            aim = f"{op} {value:g}" + (" (MONAI/ours)" if column == "MONAI/ours" else "")
            got = measured[column]
            if got is not None:
                met = "yes" if (got <= value if op == "<=" else got >= value) else "NO"
        cells = (
            f"{statistics.median(times[name]) * 1e3:.2f}",
            fmt_ratio(measured["x L1"]),
            fmt_ratio(x_monai),
            fmt_ratio(measured["MONAI/ours"]),
            f"{mib[name]:.1f}" if name in mib else "-",
            f"{warm[name]:.2f}",
            aim.split(" (")[0],
            met,
        )
        print(f"{name:28s} " + " ".join(f"{c:>10s}" for c in cells))
    print("aims (issue #16): " + "; ".join(f"{k} {c} {o} {v:g}" for k, (c, o, v) in AIMS.items()))

    for name in args.profile:
        print("\n" + profile_table(name, steps[name], steps["L1Loss"], args.repeats))

    b, p = args.shape[0], target[0].numel()
    print(f"\n(a (B, pixels, N) float32 tensor here would take {b * p * n * 4 / 2**20:.1f} MiB)")

    # Cost of the NaN/inf test in the input check, against an L1 step.
    x = pred.detach()
    with_test, without = [], []
    for _ in range(args.repeats):
        for out, finite in ((with_test, True), (without, False)):
            t0 = clock()
            check_pair(x, target, check_finite=finite)
            out.append(clock() - t0)
    extra = statistics.median(a - b for a, b in zip(with_test, without, strict=True))
    print(
        f"NaN/inf test of both inputs: {extra * 1e3:.3f} ms per call "
        f"({extra / statistics.median(times['L1Loss']) * 100:.1f}% of an L1 step); "
        f"load average at end {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
