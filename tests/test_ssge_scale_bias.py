"""scripts/ssge_scale_bias.py: Stein's-identity check of score estimators in the latent dimension
of MIGE-IB, and the scale bias it explains (the analytic-conditional variant diverging)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scripts.ssge_scale_bias import recovered, recovered_fractions

ROOT = Path(__file__).resolve().parents[1]


def test_an_exact_score_recovers_one_by_steins_identity() -> None:
    gen = torch.Generator().manual_seed(0)
    sigma = 2.5
    z = sigma * torch.randn(20000, 8, generator=gen, dtype=torch.float64)
    assert recovered(-z / sigma**2, z) == pytest.approx(1.0, abs=0.02)
    assert recovered(-z / sigma**2 * 0.5, z) == pytest.approx(0.5, abs=0.01)  # a halved score


def _fractions(k: int, seed: int = 0) -> dict[str, float]:
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(100, k, generator=gen, dtype=torch.float64)
    return recovered_fractions(mu, torch.full_like(mu, 0.3), samples_per_input=16, generator=gen)


def test_ssge_recovers_most_of_the_score_in_few_dimensions() -> None:
    low = _fractions(4)
    assert low["conditional_analytic"] == pytest.approx(1.0, abs=0.1)
    assert 0.75 < low["marginal_ssge"] < 1.15 and 0.65 < low["conditional_ssge"] < 1.05


def test_ssge_shrinks_the_score_in_mige_ibs_256_dimensions() -> None:
    # what makes exact conditional + SSGE marginal push the latent scale up (dI/dc << 0)
    high = _fractions(256)
    assert high["conditional_analytic"] == pytest.approx(1.0, abs=0.05)
    assert high["marginal_ssge"] < 0.35 and high["conditional_ssge"] < 0.1
    assert high["marginal_ssge"] - high["conditional_analytic"] < -0.6


def test_the_script_writes_its_table_and_figure(tmp_path: Path) -> None:
    out, figure = tmp_path / "bias.csv", tmp_path / "bias.png"
    args = ["--dims", "2", "64", "--seeds", "0", "--out", str(out), "--figure", str(figure)]
    proc = subprocess.run([sys.executable, "scripts/ssge_scale_bias.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 2 and {r["latent_dim"] for r in rows} == {"2", "64"}
    assert figure.stat().st_size > 10_000 and "dI/dc per K" in proc.stdout
