"""scripts/bench_losses.py at a tiny size: the table, the aims and the --profile breakdown."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

SCRIPT = str(REPO_ROOT / "scripts" / "bench_losses.py")
TINY = ["--threads", "1", "--shape", "2", "1", "16", "24", "--bins", "5", "--repeats", "2"]
FAST = ["--no-monai", "--no-compile", "--no-memory"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *TINY, *FAST, *args], capture_output=True, text=True, timeout=300
    )


def test_table_states_each_aim_and_whether_it_was_met() -> None:
    proc = _run("--no-gaussian")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {
        line.split("  ")[0]: line.split()
        for line in proc.stdout.splitlines()
        if line.startswith(("L1", "LMI", "SSIM"))
    }
    assert rows["L1Loss"][-2:] == ["-", "-"]
    assert rows["LMILoss eager"][-1] in {"yes", "NO"} and rows["LMILoss eager"][-3:-1] == ["<=", "2"]
    assert "NaN/inf test of both inputs" in proc.stdout


def test_profile_breaks_a_case_into_ops_against_l1() -> None:
    proc = _run("--no-gaussian", "--profile", "LMILoss eager")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout.split("profile of 'LMILoss eager':")[1]
    assert "x L1 (L1" in text.splitlines()[0]
    # the fused kernel's forward and backward are the custom autograd Function's nodes
    assert "FusedTraceSum " in text and "FusedTraceSumBackward" in text
    assert "(every other op)" in text


def test_profile_of_an_unknown_case_names_the_cases() -> None:
    proc = _run("--no-gaussian", "--profile", "LMI")
    assert proc.returncode != 0
    assert "--profile 'LMI': no such case; the cases are L1Loss, L2Loss" in proc.stderr


def test_volume_mode_prints_every_kernel_masked_and_not_against_monai() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "--threads",
            "1",
            "--bins",
            "8",
            "--repeats",
            "1",
            "--volume",
            "6",
            "7",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "volume 1 x 1 x 6 x 7 x 8" in proc.stdout
    rows = {
        line[:26].strip(): line.split()
        for line in proc.stdout.splitlines()
        if line.startswith(("MILoss", "NMI"))
    }
    kernels = ("linear", "gaussian", "bspline")
    assert {f"MILoss {k}{m}" for k in kernels for m in ("", " masked")} <= set(rows)
    if "MONAI GlobalMI b-spline" in proc.stdout:  # monai installed: each MI row says whether it met the aim
        assert all(r[-1] in {"yes", "NO"} for r in rows.values())


def test_rss_probe_reports_the_growth_of_the_peak_resident_set() -> None:
    """--rss runs each case in a child like this one; it prints the ru_maxrss growth in KiB."""
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--rss-probe", "MILoss bspline masked", "--volume", "6", "7", "8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split("RSS_EXTRA_KIB")[1].split()[0]) >= 0
