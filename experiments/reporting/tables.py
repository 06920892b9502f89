"""What each paper table is made of: its Hydra sweeps and where each cell's number comes from."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepmi.estimators import objective_names
from deepmi.losses import LOSSES

# The rows of the tables come from the library's registries (the one list of losses, in the papers'
# order; tests/test_config_losses.py checks that configs/loss/ holds exactly these names):
# DeepMI Table 1 every image loss, MIGE Table 1 every Deep InfoMax objective, MIGE Table 2 every
# Information Bottleneck objective.
IMAGE_LOSSES = tuple(LOSSES)
INFOMAX_OBJECTIVES = objective_names("infomax")
BOTTLENECK_OBJECTIVES = objective_names("bottleneck")
# a variant of mige_ib that is not in the paper: a row of its table, run on its own (docs/estimators.md)
VARIANTS = ("mige_ib_analytic", "mige_ib_mixture")
BIN_SWEEP = (3, 11, 15, 25)


@dataclass(frozen=True)
class Column:
    """One column of a paper table: a metric of one experiment's metrics.json."""

    key: str  # as in paper_numbers.yaml (beside this file)
    experiment: str
    metric: str
    title: str
    scale: float = 1.0  # multiply our metric by this to match the paper's unit
    lower_is_better: bool = False  # for columns the paper has no number for (else the paper's file says)


@dataclass(frozen=True)
class Sweep:
    """One Hydra multirun: an experiment and the overrides swept over (seeds added by the caller)."""

    experiment: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    name: str
    paper_key: str
    row_field: str  # "loss" or "bins": what distinguishes the rows in metrics.json
    rows: tuple[str, ...]
    columns: tuple[Column, ...]
    sweeps: tuple[Sweep, ...]
    # for rows keyed by loss: only runs at these loss settings count (Table 1 uses default bins)
    fixed: dict[str, object] = field(default_factory=dict)
    # rows beyond the paper's that runs filled (a bin count outside BIN_SWEEP); see with_run_rows
    extra_rows: tuple[str, ...] = ()


DEEPMI_COLUMNS = (
    Column("exp1/mae_tx", "exp1_bar", "test/mae_tx", "Exp1 MAE_tx (px)"),
    Column("exp1/mae_theta", "exp1_bar", "test/mae_theta", "Exp1 MAE_θ (deg)"),
    *(
        Column(f"exp2/iou_{t}", "exp2_mask", f"test/iou_{t}", f"Exp2 IoU_{t}")
        for t in ("0.05", "0.10", "0.20", "0.40", "0.50")
    ),
    Column("exp3/mae_depth_m", "exp3_depth", "test/mae_depth_m", "Exp3 MAE (m)"),
)

DEEPMI_EXPERIMENTS = ("exp1_bar", "exp2_mask", "exp3_depth")

# Exp3 with the metrics monodepth-style evaluations report (deepmi.metrics.depth): the paper's MAE
# first, then abs rel ... delta3, then disparity errors where dense ground truth exists.
_DEPTH_METRICS = (
    ("mae_depth_m", "MAE (m)", True),
    ("abs_rel", "abs rel", True),
    ("sq_rel", "sq rel", True),
    ("rmse", "RMSE (m)", True),
    ("rmse_log", "RMSE log", True),
    ("delta1", "δ<1.25", False),
    ("delta2", "δ<1.25²", False),
    ("delta3", "δ<1.25³", False),
    ("epe_px", "EPE (px)", True),
    ("bad1_pct", "bad-1 (%)", True),
    ("bad3_pct", "bad-3 (%)", True),
)
DEPTH_COLUMNS = tuple(
    Column(f"exp3/{metric}", "exp3_depth", f"test/{metric}", title, lower_is_better=lower)
    for metric, title, lower in _DEPTH_METRICS
)

TABLES: dict[str, Table] = {
    "deepmi-table1": Table(
        name="DeepMI Table 1: losses on the three unsupervised tasks",
        paper_key="deepmi_table1",
        row_field="loss",
        rows=IMAGE_LOSSES,
        columns=DEEPMI_COLUMNS,
        sweeps=tuple(Sweep(e, (f"loss={','.join(IMAGE_LOSSES)}",)) for e in DEEPMI_EXPERIMENTS),
    ),
    "deepmi-table2": Table(
        name="DeepMI Table 2: number of bins N for L_LMI",
        paper_key="deepmi_table2",
        row_field="bins",
        rows=tuple(str(n) for n in BIN_SWEEP),
        columns=DEEPMI_COLUMNS,
        sweeps=tuple(
            Sweep(e, ("loss=lmi", f"loss.bins={','.join(map(str, BIN_SWEEP))}")) for e in DEEPMI_EXPERIMENTS
        ),
        fixed={"loss": "lmi"},
    ),
    # Exp1 alone, for studies of Exp1's own settings (e.g. its batch size)
    "deepmi-exp1-bar": Table(
        name="DeepMI Exp1 (Table 1's losses): alignment errors",
        paper_key="deepmi_table1",
        row_field="loss",
        rows=IMAGE_LOSSES,
        columns=tuple(c for c in DEEPMI_COLUMNS if c.experiment == "exp1_bar"),
        sweeps=(Sweep("exp1_bar", (f"loss={','.join(IMAGE_LOSSES)}",)),),
    ),
    # Exp2 alone, for studies of Exp2's own settings (e.g. its training budget)
    "deepmi-exp2-mask": Table(
        name="DeepMI Exp2 (Table 1's losses): IoU of the predicted dissimilar region",
        paper_key="deepmi_table1",
        row_field="loss",
        rows=IMAGE_LOSSES,
        columns=tuple(c for c in DEEPMI_COLUMNS if c.experiment == "exp2_mask"),
        sweeps=(Sweep("exp2_mask", (f"loss={','.join(IMAGE_LOSSES)}",)),),
    ),
    "deepmi-exp2-mask-bins": Table(
        name="DeepMI Exp2 (Table 2's bin counts N for L_LMI): IoU of the predicted dissimilar region",
        paper_key="deepmi_table2",
        row_field="bins",
        rows=tuple(str(n) for n in BIN_SWEEP),
        columns=tuple(c for c in DEEPMI_COLUMNS if c.experiment == "exp2_mask"),
        sweeps=(Sweep("exp2_mask", ("loss=lmi", f"loss.bins={','.join(map(str, BIN_SWEEP))}")),),
        fixed={"loss": "lmi"},
    ),
    "deepmi-exp3-depth": Table(
        name="DeepMI Exp3 (Table 1's losses): standard depth and disparity metrics",
        paper_key="deepmi_table1",  # the paper reports MAE (m) only
        row_field="loss",
        rows=IMAGE_LOSSES,
        columns=DEPTH_COLUMNS,
        sweeps=(Sweep("exp3_depth", (f"loss={','.join(IMAGE_LOSSES)}",)),),
    ),
    "deepmi-exp3-depth-bins": Table(
        name="DeepMI Exp3 (Table 2's bin counts N for L_LMI): standard depth and disparity metrics",
        paper_key="deepmi_table2",
        row_field="bins",
        rows=tuple(str(n) for n in BIN_SWEEP),
        columns=DEPTH_COLUMNS,
        sweeps=(Sweep("exp3_depth", ("loss=lmi", f"loss.bins={','.join(map(str, BIN_SWEEP))}")),),
        fixed={"loss": "lmi"},
    ),
    "mige-table1": Table(
        name="MIGE Table 1: Deep InfoMax, test accuracy (%) of classifiers on frozen features",
        paper_key="mige_table1",
        row_field="loss",
        rows=INFOMAX_OBJECTIVES,
        columns=tuple(
            Column(f"{d}/{level}", f"dim_{d}", f"test/acc_{level}", f"{d.upper()} {title}")
            for d in ("cifar10", "cifar100")
            for level, title in (("conv", "conv"), ("fc", "fc(1024)"), ("y", "Y(64)"))
        ),
        sweeps=tuple(
            Sweep(f"dim_{d}", (f"loss={','.join(INFOMAX_OBJECTIVES)}",)) for d in ("cifar10", "cifar100")
        ),
    ),
    "mige-table2": Table(
        name="MIGE Table 2: permutation-invariant MNIST, test misclassification rate (%)",
        paper_key="mige_table2",
        row_field="loss",
        rows=BOTTLENECK_OBJECTIVES,
        columns=(Column("mnist/error_pct", "ib_mnist", "test/error_pct", "MNIST error (%)"),),
        sweeps=(
            Sweep("ib_mnist", (f"loss={','.join(n for n in BOTTLENECK_OBJECTIVES if n not in VARIANTS)}",)),
        ),
    ),
}

# Trivial baselines, computed by each module's own metric code on the same test split and logged
# beside its metrics: row title -> metric key, "{metric}" being the column's metric without "test/".
BASELINES: dict[str, dict[str, str]] = {
    "exp1_bar": {"predict (0, 0)": "test/baseline_{metric}"},
    "exp2_mask": {
        "mask everywhere": "test/baseline_everywhere_{metric}",
        "mask nowhere": "test/baseline_nowhere_{metric}",
    },
    "exp3_depth": {"median training depth": "test/baseline_{metric}"},
    "ib_mnist": {"majority class": "test/baseline_{metric}"},
}

# Figures are single runs whose metrics.json points at their PNG/CSV outputs.
FIGURES: dict[str, Sweep] = {"mige-fig1": Sweep("mige_toy", ())}
