"""Does Exp1 learn at all in a few steps? Compares optimizers/learning rates on 200 bar pairs.

    python scripts/diagnose_exp1_lr.py [--steps 150] [--trials sgd:1e-3:l1 sgd:30.72:lmi ...]

Prints MAE_tx / MAE_theta on the 200 training pairs after `steps` SGD/Adam steps at 96x320.
Written because the paper's setting (SGD, Nesterov 0.95, lr 1e-3) left our per-pixel-mean losses
at chance level in 5 epochs (RESULTS.md): the check that separates "no signal" from "too small a step".
A per-image *sum* over pixels (Caffe's convention) at lr 1e-3 equals our per-pixel mean at
lr 1e-3 * 96 * 320 = 30.72 here: `--trials sgd:30.72:l1` tests that reading of the paper.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from deepmi.data.bar import BarAlignmentDataset
from deepmi.losses import build_loss
from deepmi.models import STNRegressor, rigid_warp

TRIALS = [("sgd", 1e-3, "l1"), ("sgd", 1e-1, "l1"), ("adam", 1e-3, "l1"), ("adam", 1e-3, "lmi")]


def trial(optimizer: str, lr: float, loss_name: str, data: dict[str, torch.Tensor], steps: int) -> str:
    torch.manual_seed(0)
    model = STNRegressor(tx_range=50, theta_range=40)
    loss = build_loss(loss_name, **({"bins": 11} if loss_name in ("lmi", "mi") else {}))
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.95, nesterov=True)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99))
    n = len(data["tx"])
    for _ in range(steps):
        i = torch.randint(0, n, (8,))
        tx, theta = model(torch.cat([data["source"][i], data["target"][i]], 1))
        value = loss(rigid_warp(data["source"][i], tx, theta), data["target"][i])
        opt.zero_grad()
        value.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        tx, theta = model(torch.cat([data["source"], data["target"]], 1))
    mae_tx = float((tx - data["tx"]).abs().mean())
    mae_theta = float((theta - data["theta"]).abs().mean())
    return (
        f"{optimizer:>4} lr={lr:<6g} {loss_name:>4}: MAE_tx {mae_tx:6.2f} px  MAE_theta {mae_theta:6.2f} deg"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument(
        "--trials", nargs="+", default=[f"{o}:{lr:g}:{loss}" for o, lr, loss in TRIALS],
        help="optimizer:lr:loss triples, optimizer in {sgd, adam}, loss any image loss",
    )  # fmt: skip
    args = parser.parse_args()
    trials = []
    for text in args.trials:
        optimizer, lr, loss = text.split(":")
        if optimizer not in ("sgd", "adam"):
            parser.error(f"unknown optimizer {optimizer!r} in {text!r}; use sgd or adam")
        trials.append((optimizer, float(lr), loss))
    with tempfile.TemporaryDirectory() as root:
        ds = BarAlignmentDataset(
            root=root, split="train", n_train=200, n_test=10, height=96, width=320,
            bar_height=25, bar_width=62, max_tx=50, max_theta=40, seed=1, progress=False,
        )  # fmt: skip
        items = [ds[i] for i in range(len(ds))]
    data = {k: torch.stack([item[k] for item in items]) for k in ("source", "target", "tx", "theta")}
    chance_tx, chance_theta = float(data["tx"].abs().mean()), float(data["theta"].abs().mean())
    print(f"chance (predict 0): MAE_tx {chance_tx:.2f} px  MAE_theta {chance_theta:.2f} deg")
    for args_ in trials:
        print(trial(*args_, data, args.steps), flush=True)


if __name__ == "__main__":
    main()
