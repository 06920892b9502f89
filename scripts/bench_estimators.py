"""MI and MI-gradient estimators on ground-truth tasks (Czyż et al. 2023's "Beyond Normal" families).

    OMP_NUM_THREADS=1 python scripts/bench_estimators.py            # run missing cells, write the page
    python scripts/bench_estimators.py --render-only                 # page + figure from the records
    python scripts/bench_estimators.py --check                       # exit 1 if the page is stale

Two kinds of cells, one JSON record each under ``results/estimators/records/`` (a cell whose
record exists is skipped, so an interrupted run resumes where it stopped):

- ``mi/<task>__<estimator>__s<seed>.json``: an MI estimate on ``n_samples`` samples of the task.
  KSG (``deepmi.benchmark.ksg_mutual_information``) uses all of them; each critic estimator (MINE,
  MINE-f, infoNCE, JSD) trains a separable critic on the first half and reads its bound out on the
  second half, in chunks of ``eval_batch``.
- ``grad/<task>__<estimator>__s<seed>.json``: dI/drho estimates over the ``rhos`` grid, beside the
  truth. Critics are trained from scratch at each rho as above; their gradient is the autograd
  derivative of the read-out bound on a fresh reparameterised batch of ``grad_batch`` samples.
  MIGE (``mige_mi_surrogate``, circumstance I, or II where X depends on rho) uses ``grad_batch``
  samples, ``mige_proj`` adds a random projection of X to ``ceil(dim_x / 2)`` dimensions, and
  ``mige_iii`` is the stochastic-encoder form (``mige_stochastic_mi_surrogate``, circumstance III)
  on ``mige_inputs`` inputs x ``mige_draws`` channel draws, where Y | X is a Gaussian channel.

The page ``results/mi_benchmark.md`` and its figure are rendered from the records and from
``results/estimators/published_numbers.yaml`` only.
"""

from __future__ import annotations

# isort: off
import experiments  # noqa: F401  (before torch: OMP_WAIT_POLICY=passive, see experiments/__init__.py)

# isort: on
import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from deepmi.benchmark import Task, ksg_mutual_information
from deepmi.estimators import (
    CriticMIEstimator,
    SeparableCritic,
    dv_bound,
    infonce_bound,
    mige_mi_surrogate,
    mige_stochastic_mi_surrogate,
    nwj_bound,
)

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "results" / "estimators" / "records"
PUBLISHED = REPO / "results" / "estimators" / "published_numbers.yaml"
PAGE = REPO / "results" / "mi_benchmark.md"
FIGURE = REPO / "results" / "figures" / "mi_benchmark.png"


def _sparse(d: int, transform: str | None = None, rho: float = 0.8) -> Task:
    bmi = f"multinormal-sparse-{d}-{d}-2-2.0"
    bmi_id = {None: bmi, "half_cube": f"half_cube-{bmi}", "spiral": f"spiral-{bmi}",
              "normal_cdf": f"normal_cdf-{bmi}"}.get(transform)
    return Task("sparse", d, d, rho, n_pairs=2, transform=transform, bmi_id=bmi_id)


def _student(d: int, dof: int, transform: str | None = None) -> Task:
    bmi = f"student-identity-{d}-{d}-{dof}"
    bmi_id = f"asinh-{bmi}" if transform else bmi
    return Task("student", d, d, 0.0, dof=dof, transform=transform, bmi_id=bmi_id)


# The minimum list (#32) plus bmi's normal-CDF and asinh @ Student-t where they were affordable.
MI_TASKS: list[Task] = [
    Task("sparse", 1, 1, 0.75, n_pairs=1, bmi_id="1v1-normal-0.75"),
    Task("dense", 5, 5, 0.5, bmi_id="multinormal-dense-5-5-0.5"),
    _sparse(5),
    Task("dense", 25, 25, 0.5, bmi_id="multinormal-dense-25-25-0.5"),
    _sparse(25),
    _student(2, 1),
    _student(3, 2),
    _student(5, 3),
    _sparse(3, "half_cube"),
    _sparse(5, "half_cube"),
    _sparse(3, "asinh"),
    _sparse(5, "asinh"),
    _sparse(3, "spiral"),
    _sparse(5, "spiral"),
    _sparse(3, "normal_cdf"),
    _student(3, 2, "asinh"),
]

# Parametric tasks for the gradient table (rho varies over the grid; the task's own rho is unused).
GRAD_TASKS: list[Task] = [
    _sparse(3),
    _sparse(3, "half_cube"),
    _sparse(3, "asinh"),
    _sparse(3, "spiral"),
    _sparse(5),
    _sparse(5, "spiral"),
    Task("dense", 5, 5, 0.5, bmi_id="multinormal-dense-5-5-0.5"),
    _sparse(25),
    Task("student", 3, 3, 0.8, n_pairs=2, dof=3, bmi_id=None),
]

MI_ESTIMATORS = ("ksg", "mine", "mine_f", "infonce", "jsd")
GRAD_ESTIMATORS = ("mige", "mige_proj", "mige_iii", "mine", "mine_f", "infonce")
LABELS = {"ksg": "KSG", "mine": "MINE", "mine_f": "MINE-f", "infonce": "infoNCE", "jsd": "JSD",
          "mige": "MIGE", "mige_proj": "MIGE + proj.", "mige_iii": "MIGE (III)"}
_TRAIN_BOUND = {"mine": "mine", "mine_f": "nwj", "infonce": "infonce", "jsd": "jsd"}
# The JSD-trained critic approximates log p(x,y)/(p(x)p(y)) at its optimum; its MI is read out with DV.
_READOUT: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mine": dv_bound, "mine_f": nwj_bound, "infonce": infonce_bound, "jsd": dv_bound,
}

CONFIG: dict = {
    "n_samples": 5000,
    "seeds": [0, 1, 2],
    "steps": 800,
    "batch": 256,
    "lr": 3e-4,
    "hidden_dim": 128,
    "embed_dim": 32,
    "ema_decay": 0.99,
    "eval_batch": 500,
    "ksg_k": 5,
    "rhos": [0.2, 0.35, 0.5, 0.65, 0.8],
    "grad_batch": 512,
    "eigen_threshold": 0.99,
    "mige_inputs": 256,
    "mige_draws": 8,
}

TINY_CONFIG: dict = {
    **CONFIG,
    "n_samples": 400,
    "seeds": [0],
    "steps": 5,
    "batch": 32,
    "hidden_dim": 8,
    "embed_dim": 4,
    "eval_batch": 100,
    "rhos": [0.3, 0.6],
    "grad_batch": 64,
    "mige_inputs": 32,
    "mige_draws": 4,
}


# ---------------------------------------------------------------------------------------------
# estimators


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def _standardizer(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # the sample mean and std of the training half, as benchmark-mi's neural estimators standardise
    return x.mean(0, keepdim=True), x.std(0, keepdim=True).clamp_min(1e-12)


def train_critic(task: Task, estimator: str, x: torch.Tensor, y: torch.Tensor, cfg: dict, seed: int):
    """A separable critic trained with ``estimator``'s bound on minibatches of (x, y); returns
    ``critic(x, y) -> scores`` on raw samples (the training split's standardisation folded in)."""
    mx, sx = _standardizer(x)
    my, sy = _standardizer(y)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        critic = SeparableCritic(task.dim_x, task.dim_y, cfg["hidden_dim"], cfg["embed_dim"])
    est = CriticMIEstimator(critic, bound=_TRAIN_BOUND[estimator], ema_decay=cfg["ema_decay"])
    opt = torch.optim.Adam(est.parameters(), lr=cfg["lr"])
    gen = torch.Generator().manual_seed(seed + 1)
    xs, ys = (x - mx) / sx, (y - my) / sy
    for _ in range(cfg["steps"]):
        idx = torch.randint(xs.shape[0], (cfg["batch"],), generator=gen)
        opt.zero_grad(set_to_none=True)
        (-est(xs[idx], ys[idx])).backward()
        opt.step()
    critic.eval()
    return lambda a, b: critic((a - mx) / sx, (b - my) / sy)


def critic_mi(task: Task, estimator: str, x: torch.Tensor, y: torch.Tensor, cfg: dict, seed: int) -> float:
    half = x.shape[0] // 2
    critic = train_critic(task, estimator, x[:half], y[:half], cfg, seed)
    readout = _READOUT[estimator]
    with torch.no_grad():
        chunks = [
            float(readout(critic(x[i : i + cfg["eval_batch"]], y[i : i + cfg["eval_batch"]])))
            for i in range(half, x.shape[0] - cfg["eval_batch"] + 1, cfg["eval_batch"])
        ]
    return float(np.mean(chunks))


def run_mi_cell(task: Task, estimator: str, seed: int, cfg: dict) -> dict:
    x, y = task.sample(cfg["n_samples"], torch.Generator().manual_seed(_seed(task.name, "data", seed)))
    start = time.perf_counter()
    if estimator == "ksg":
        value = ksg_mutual_information(x.numpy(), y.numpy(), k=cfg["ksg_k"])
    else:
        value = critic_mi(task, estimator, x, y, cfg, _seed(task.name, estimator, seed))
    return {"estimate": value, "truth": task.mutual_information(), "seconds": time.perf_counter() - start}


def project_dim(task: Task) -> int | None:
    """MIGE's random projection of X to ceil(dim_x / 2) dimensions; None where X is 1-d."""
    return math.ceil(task.dim_x / 2) if task.dim_x >= 2 else None


def grad_applies(task: Task, estimator: str) -> bool:
    if estimator == "mige_proj":
        return project_dim(task) is not None
    if estimator == "mige_iii":
        return task.has_gaussian_channel
    return True


def _one_gradient(task: Task, estimator: str, rho: float, cfg: dict, seed: int) -> float:
    gen = torch.Generator().manual_seed(seed)
    rho_t = torch.tensor(rho, requires_grad=True)
    kw = {"eigen_threshold": cfg["eigen_threshold"]}
    if estimator in ("mige", "mige_proj"):
        x, y = task.sample(cfg["grad_batch"], gen, rho=rho_t)
        proj = project_dim(task) if estimator == "mige_proj" else None
        surrogate = mige_mi_surrogate(x, y, project_dim=proj, project_seed=seed % 1000, **kw)
    elif estimator == "mige_iii":
        _, y = task.sample_grouped(cfg["mige_inputs"], cfg["mige_draws"], gen, rho=rho_t)
        surrogate = mige_stochastic_mi_surrogate(y, **kw)
    else:
        x, y = task.sample(cfg["n_samples"], gen, rho=rho)
        critic = train_critic(task, estimator, x[: x.shape[0] // 2], y[: y.shape[0] // 2], cfg, seed + 7)
        xg, yg = task.sample(cfg["grad_batch"], gen, rho=rho_t)
        surrogate = _READOUT[estimator](critic(xg, yg))
    (grad,) = torch.autograd.grad(surrogate, rho_t)
    return float(grad)


def run_grad_cell(task: Task, estimator: str, seed: int, cfg: dict) -> dict:
    estimates, seconds = [], []
    for i, rho in enumerate(cfg["rhos"]):
        start = time.perf_counter()
        estimates.append(_one_gradient(task, estimator, rho, cfg, _seed(task.name, estimator, seed, i)))
        seconds.append(time.perf_counter() - start)
    truth = [task.mi_gradient(r) for r in cfg["rhos"]]
    est, tru = np.asarray(estimates), np.asarray(truth)
    return {
        "rhos": list(cfg["rhos"]),
        "estimates": estimates,
        "truth": truth,
        "relative_error": float(np.linalg.norm(est - tru) / np.linalg.norm(tru)),
        "cosine": float(est @ tru / (np.linalg.norm(est) * np.linalg.norm(tru) + 1e-300)),
        "seconds_per_gradient": float(np.mean(seconds)),
        "circumstance": _circumstance(task, estimator),
        "project_dim": project_dim(task) if estimator == "mige_proj" else None,
    }


def _circumstance(task: Task, estimator: str) -> str | None:
    if not estimator.startswith("mige"):
        return None
    if estimator == "mige_iii":
        return "III"
    return "II" if task.x_depends_on_rho else "I"


# ---------------------------------------------------------------------------------------------
# records


def environment() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def cells(tasks_mi: Sequence[Task], tasks_grad: Sequence[Task], cfg: dict, estimators: dict) -> list:
    out = []
    for seed in cfg["seeds"]:  # seed-major: a partial run already covers every task
        for task in tasks_mi:
            out += [("mi", task, e, seed) for e in estimators["mi"]]
        for task in tasks_grad:
            out += [("grad", task, e, seed) for e in estimators["grad"] if grad_applies(task, e)]
    return out


def record_path(records: Path, kind: str, task: Task, estimator: str, seed: int) -> Path:
    return records / kind / f"{task.name}__{estimator}__s{seed}.json"


def run_cells(todo: list, records: Path, cfg: dict, command: str, show_progress: bool = True) -> int:
    """Run every cell without a record; returns how many were run."""
    missing = [c for c in todo if not record_path(records, c[0], c[1], c[2], c[3]).exists()]
    bar = tqdm(
        total=len(todo), initial=len(todo) - len(missing), desc="estimator cells", disable=not show_progress
    )
    for kind, task, estimator, seed in missing:
        bar.set_postfix_str(f"{kind} {task.name} {estimator} s{seed}")
        result = (run_mi_cell if kind == "mi" else run_grad_cell)(task, estimator, seed, cfg)
        record = {
            "kind": kind, "task": task.name, "label": task.label, "bmi_id": task.bmi_id,
            "dims": [task.dim_x, task.dim_y], "estimator": estimator, "seed": seed, **result,
            "config": {k: v for k, v in cfg.items() if k != "seeds"},
            "env": environment(),
            "command": command,
        }
        path = record_path(records, kind, task, estimator, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        tmp.replace(path)  # atomic: an interrupted write never leaves a half record
        bar.update(1)
    bar.close()
    return len(missing)


def load_records(records: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(records.glob("*/*.json"))]


# ---------------------------------------------------------------------------------------------
# page


def load_published(path: Path) -> dict:
    if not path.exists():
        return {}
    import yaml  # the repro extra; only the page needs it

    return yaml.safe_load(path.read_text()) or {}


def _mean_std(values: Sequence[float], digits: int = 2) -> str:
    v = np.asarray(values, float)
    if v.size == 0:
        return "–"
    bad = int((~np.isfinite(v)).sum())
    if bad:  # a diverged read-out (NaN / inf) is reported, not averaged in
        finite = _mean_std(v[np.isfinite(v)], digits) if bad < v.size else ""
        return f"{finite} ({bad}/{v.size} non-finite)".strip()
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _ordered(records: list[dict], kind: str) -> list[tuple[str, str, str | None]]:
    labels = {t.name: t.label for t in MI_TASKS + GRAD_TASKS}  # the current wording, else the record's
    seen: dict[str, tuple[str, str, str | None]] = {}
    for r in records:
        if r["kind"] == kind:
            seen.setdefault(r["task"], (r["task"], labels.get(r["task"], r["label"]), r.get("bmi_id")))
    order = {t.name: i for i, t in enumerate(MI_TASKS if kind == "mi" else GRAD_TASKS)}
    return sorted(seen.values(), key=lambda t: (order.get(t[0], len(order)), t[0]))


def _by(records: list[dict], kind: str) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r["kind"] == kind:
            out.setdefault((r["task"], r["estimator"]), []).append(r)
    return out


def _published_cell(published: dict, bmi_id: str | None, estimator: str) -> str:
    entry = (published.get("numbers") or {}).get(bmi_id or "", {}).get(estimator)
    if entry is None or entry.get("value") is None:
        return "not transcribed"
    return f"{entry['value']:.2f}"


def render_page(records: list[dict], published: dict, figure_rel: str) -> str:
    mi, grad = _by(records, "mi"), _by(records, "grad")
    mi_est = [e for e in MI_ESTIMATORS if any(k[1] == e for k in mi)]
    grad_est = [e for e in GRAD_ESTIMATORS if any(k[1] == e for k in grad)]
    envs = [r["env"] for r in records]
    cfgs = {json.dumps(r["config"], sort_keys=True) for r in records}
    lines = [
        "# MI and MI-gradient estimators on ground-truth tasks",
        "",
        "Generated by `scripts/bench_estimators.py` from the records in `results/estimators/records/`"
        " and the published numbers in `results/estimators/published_numbers.yaml`; do not edit by hand"
        " (`python scripts/bench_estimators.py --check` fails when this page is stale).",
        "",
        "Tasks: `deepmi.benchmark.Task`, our own samplers of the families of Czyż et al. (2023), \"Beyond"
        " Normal\" (benchmark-mi); MI in nats. Ground truth from closed forms; dI/drho is the base"
        " family's for every invertible map.",
        "",
        "## Setup (from the records)",
        "",
    ]
    if records:
        lines += [
            f"- command: {', '.join(f'`{c}`' for c in sorted({r['command'] for r in records}))}",
            f"- CPU: {', '.join(sorted({e['cpu'] for e in envs}))}; torch threads:"
            f" {', '.join(str(t) for t in sorted({e['threads'] for e in envs}))};"
            f" torch {', '.join(sorted({e['torch'] for e in envs}))}",
            f"- records written {min(e['date'] for e in envs)} to {max(e['date'] for e in envs)}"
            f" ({len(records)} cells)",
        ]
        for c in sorted(cfgs):
            cfg = json.loads(c)
            lines.append(
                f"- {cfg['n_samples']} samples per task and seed; critics: separable MLPs"
                f" (2 hidden layers of {cfg['hidden_dim']}, {cfg['embed_dim']}-d embeddings), {cfg['steps']}"
                f" Adam steps, batch {cfg['batch']}, lr {cfg['lr']:g}, trained on the first half and read"
                f" out on the second in chunks of {cfg['eval_batch']}; inputs standardised by the training"
                f" half's mean and std (infoNCE is capped at"
                f" log {cfg['eval_batch']} = {math.log(cfg['eval_batch']):.2f}); KSG k = {cfg['ksg_k']}"
                f" on all samples; gradients on a rho grid {cfg['rhos']}, {cfg['grad_batch']} samples per"
                f" gradient (MIGE (III): {cfg['mige_inputs']} inputs x {cfg['mige_draws']} draws), SSGE"
                f" threshold {cfg['eigen_threshold']}"
            )
    n_seeds = sorted({r["seed"] for r in records})
    lines += [
        "",
        "## MI values: estimate (mean ± std over seeds) vs truth",
        "",
        f"Seeds: {n_seeds}. JSD's critic is trained with the Jensen-Shannon bound and read out with the"
        " Donsker-Varadhan bound. MIGE estimates only gradients, so it has no column here.",
        "",
    ]
    head = ["task", "truth", *[LABELS[e] for e in mi_est], "published (Czyż et al. 2023)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, label, bmi_id in _ordered(records, "mi"):
        truth = next(r["truth"] for (t, _), rs in mi.items() if t == name for r in rs)
        row = [label, f"{truth:.2f}"]
        row += [_mean_std([r["estimate"] for r in mi.get((name, e), [])]) for e in mi_est]
        pub = [(LABELS[e], _published_cell(published, bmi_id, e)) for e in ("ksg", "mine", "infonce")]
        if not bmi_id:
            row.append("not in benchmark-mi")
        elif all(v == "not transcribed" for _, v in pub):
            row.append("not transcribed")
        else:
            row.append("; ".join(f"{name} {v}" for name, v in pub))
        lines.append("| " + " | ".join(row) + " |")
    source = published.get("source", "")
    if source:
        lines += ["", f"Published column: {source} {published.get('note', '')}".rstrip()]
    lines += [
        "",
        "## MI gradients: dI/drho over the rho grid (mean ± std over seeds)",
        "",
        "Relative error `|g_hat - g|_2 / |g|_2` and cosine between the estimated and the true dI/drho,"
        " each vector over the rho grid; time per gradient includes the critic's training at that rho."
        " MIGE's circumstance (I: X is data; II: X depends on rho; III: Y is a stochastic encoder of X) is"
        " given per row; `–`: does not apply (1-d X cannot be projected; III needs a Gaussian channel).",
        "",
    ]
    for title, key, digits in (("relative error (lower is better)", "relative_error", 2),
                               ("cosine (1 is best)", "cosine", 3),
                               ("seconds per gradient", "seconds_per_gradient", 3)):
        lines += [f"**{title}**", ""]
        head = ["task", "MIGE circ.", *[LABELS[e] for e in grad_est]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, label, _ in _ordered(records, "grad"):
            circ = sorted({r["circumstance"] for (t, e), rs in grad.items() if t == name and e == "mige"
                           for r in rs if r["circumstance"]})
            row = [label, ", ".join(circ) or "–"]
            row += [_mean_std([r[key] for r in grad.get((name, e), [])], digits) for e in grad_est]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += _summary(mi, grad, mi_est, grad_est, _ordered(records, "mi"), _ordered(records, "grad"))
    lines += ["", f"![MI estimates and gradient errors]({figure_rel})", ""]
    return "\n".join(lines)


def _summary(mi, grad, mi_est, grad_est, mi_tasks, grad_tasks) -> list[str]:
    """Facts computed from the records for the advice in docs/estimators.md."""
    lines = ["## Summary (computed from the records above)", ""]
    if mi_tasks and mi_est:
        wins = dict.fromkeys(mi_est, 0)
        for name, _, _ in mi_tasks:
            errs = {e: abs(np.mean([r["estimate"] - r["truth"] for r in mi[(name, e)]]))
                    for e in mi_est if (name, e) in mi}
            if errs:
                wins[min(errs, key=errs.get)] += 1
        ranked = ", ".join(f"{LABELS[e]} {n}" for e, n in sorted(wins.items(), key=lambda kv: -kv[1]))
        lines.append(f"- MI values: tasks on which each estimator has the smallest |mean error|: {ranked}"
                     f" (of {len(mi_tasks)} tasks).")
    if grad_tasks and grad_est:
        wins = dict.fromkeys(grad_est, 0)
        medians = {}
        for e in grad_est:
            vals = [np.mean([r["relative_error"] for r in grad[(n, e)]])
                    for n, _, _ in grad_tasks if (n, e) in grad]
            medians[e] = float(np.median(vals)) if vals else float("nan")
            secs = [r["seconds_per_gradient"] for (n, ee), rs in grad.items() if ee == e for r in rs]
            medians[e + "/s"] = float(np.median(secs)) if secs else float("nan")
        for name, _, _ in grad_tasks:
            errs = {e: np.mean([r["relative_error"] for r in grad[(name, e)]])
                    for e in grad_est if (name, e) in grad}
            if errs:
                wins[min(errs, key=errs.get)] += 1
        ranked = ", ".join(f"{LABELS[e]} {n}" for e, n in sorted(wins.items(), key=lambda kv: -kv[1]))
        lines.append(f"- MI gradients: tasks on which each estimator has the smallest mean relative error:"
                     f" {ranked} (of {len(grad_tasks)} tasks).")
        lines.append("- Median over tasks of the mean relative error: " + ", ".join(
            f"{LABELS[e]} {medians[e]:.2f}" for e in grad_est) + ".")
        lines.append("- Median seconds per gradient: " + ", ".join(
            f"{LABELS[e]} {medians[e + '/s']:.3f}" for e in grad_est) + ".")
    return lines


def plot(records: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    mi, grad = _by(records, "mi"), _by(records, "grad")
    mi_tasks, grad_tasks = _ordered(records, "mi"), _ordered(records, "grad")
    lo, hi = -0.5, 1.5  # a diverged read-out (e.g. DV on Student-t, 1 dof) would hide every other point
    fig = Figure(figsize=(13, 5.5))
    left, right = fig.subplots(1, 2)
    for k, e in enumerate(e for e in MI_ESTIMATORS if any(key[1] == e for key in mi)):
        xs, ys, errs = [], [], []
        for i, (name, _, _) in enumerate(mi_tasks):
            rs = mi.get((name, e), [])
            if rs:
                ratio = np.asarray([r["estimate"] / r["truth"] for r in rs])
                ratio = ratio[np.isfinite(ratio)] if np.isfinite(ratio).any() else ratio
                xs.append(i + 0.12 * (k - 2))
                ys.append(np.mean(ratio))
                errs.append(np.std(ratio))
        ys = np.clip(np.nan_to_num(np.asarray(ys), nan=lo, posinf=hi, neginf=lo), lo, hi)
        errs = np.where(np.isfinite(errs), errs, 0.0)
        left.errorbar(xs, ys, yerr=errs, fmt="o", ms=4, label=LABELS[e])
    left.set_ylim(lo - 0.05, hi + 0.05)
    left.axhline(1.0, color="k", lw=0.8)
    left.set_xticks(range(len(mi_tasks)), [t[1] for t in mi_tasks], rotation=75, fontsize=7)
    left.set_ylabel("estimate / true MI")
    left.set_title(f"MI values (mean ± std over seeds; clipped to [{lo}, {hi}])")
    left.legend(fontsize=7)
    ests = [e for e in GRAD_ESTIMATORS if any(key[1] == e for key in grad)]
    width = 0.8 / max(len(ests), 1)
    for k, e in enumerate(ests):
        xs, ys = [], []
        for i, (name, _, _) in enumerate(grad_tasks):
            rs = grad.get((name, e), [])
            if rs:
                xs.append(i + width * (k - (len(ests) - 1) / 2))
                ys.append(np.mean([r["relative_error"] for r in rs]))
        right.bar(xs, ys, width=width, label=LABELS[e])
    right.set_yscale("log")
    right.set_xticks(range(len(grad_tasks)), [t[1] for t in grad_tasks], rotation=75, fontsize=7)
    right.set_ylabel("relative error of dI/drho over the rho grid")
    right.set_title("MI gradients (mean over seeds)")
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--page", type=Path, default=PAGE)
    parser.add_argument("--figure", type=Path, default=FIGURE)
    parser.add_argument("--published", type=Path, default=PUBLISHED)
    parser.add_argument("--tiny", action="store_true", help="seconds-long configuration for the tests")
    parser.add_argument("--tasks", nargs="+", default=None, help="only these task names")
    parser.add_argument("--estimators", nargs="+", default=None, help="only these estimators")
    parser.add_argument("--only", choices=["mi", "grad"], default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--render-only", action="store_true", help="write page and figure from the records")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs from the records'")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    try:
        figure_rel = os.path.relpath(args.figure, args.page.parent)
    except ValueError:
        figure_rel = str(args.figure)
    if args.check:
        expected = render_page(load_records(args.records), load_published(args.published), figure_rel)
        current = args.page.read_text() if args.page.exists() else ""
        if current != expected:
            print(f"{args.page} is stale; regenerate: python scripts/bench_estimators.py --render-only")
            return 1
        print(f"{args.page} matches the records")
        return 0

    torch.set_num_threads(args.threads)
    if not args.render_only:
        cfg = TINY_CONFIG if args.tiny else CONFIG
        mi_tasks = [t for t in MI_TASKS if args.tasks is None or t.name in args.tasks]
        grad_tasks = [t for t in GRAD_TASKS if args.tasks is None or t.name in args.tasks]
        if args.only == "grad":
            mi_tasks = []
        if args.only == "mi":
            grad_tasks = []
        known = {t.name for t in MI_TASKS + GRAD_TASKS}
        unknown = sorted(set(args.tasks or []) - known)
        if unknown:
            parser.error(f"unknown task(s) {unknown}; valid: {sorted(known)}")
        est = {"mi": [e for e in MI_ESTIMATORS if args.estimators is None or e in args.estimators],
               "grad": [e for e in GRAD_ESTIMATORS if args.estimators is None or e in args.estimators]}
        command = "OMP_NUM_THREADS=1 python " + " ".join(
            shlex.quote(a)
            for a in ["scripts/bench_estimators.py", *(argv if argv is not None else sys.argv[1:])]
        )
        n = run_cells(cells(mi_tasks, grad_tasks, cfg, est), args.records, cfg, command, not args.no_progress)
        print(f"ran {n} cells; records in {args.records}")
    records = load_records(args.records)
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(render_page(records, load_published(args.published), figure_rel))
    if records:
        plot(records, args.figure)
    print(f"wrote {args.page} and {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
