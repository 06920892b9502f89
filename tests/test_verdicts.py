"""The verdict rule's statistics against scipy's own tests, on hand-made cases (docs/verdicts.md)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from experiments.reporting.verdicts import (
    Arm,
    fisher_exact,
    judge_best,
    power_two_sample,
    seeds_for_power,
    welch_test,
)

# Synthetic Exp3 at cpu scale, MAE (m) per seed 0-4 (results/runs/cpu/exp3_depth): SSIM vs L_LMI N = 11,
# the comparison the report issue recomputed at p = 0.047.
SSIM = [9.900640487670898, 9.822938919067383, 9.82931900024414, 10.396332740783691, 10.488956451416016]
LMI = [10.99101448059082, 10.481026649475098, 10.336834907531738, 10.352460861206055, 10.506104469299316]


@pytest.mark.parametrize(
    "a, b",
    [
        (SSIM, LMI),
        ([1.0, 2.0, 3.0], [2.5, 3.5, 4.5, 5.5]),
        ([0.31, 0.30, 0.35], [0.29, 0.33]),
        ([10.0, 10.1], [10.0, 10.1]),
    ],
)
def test_welch_matches_scipy(a: list[float], b: list[float]) -> None:
    ours = welch_test(a, b)
    theirs = stats.ttest_ind(a, b, equal_var=False)
    assert ours.t == pytest.approx(theirs.statistic, rel=1e-9, abs=1e-12)
    assert ours.p == pytest.approx(theirs.pvalue, rel=1e-9)
    assert ours.df == pytest.approx(theirs.df, rel=1e-9)
    low, high = theirs.confidence_interval(0.95)
    assert (ours.low, ours.high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))


def test_the_exp3_case_has_the_recomputed_p() -> None:
    assert round(welch_test(SSIM, LMI).p, 3) == 0.047


def test_welch_refuses_a_single_seed_and_handles_zero_spread() -> None:
    with pytest.raises(ValueError, match="two or more values"):
        welch_test([1.0], [1.0, 2.0])
    assert welch_test([2.0, 2.0], [1.0, 1.0]).p == 0.0
    assert welch_test([2.0, 2.0], [2.0, 2.0]).p == 1.0


@pytest.mark.parametrize(
    "table", [(5, 5, 0, 5), (3, 5, 5, 5), (0, 3, 3, 3), (2, 7, 6, 9), (4, 4, 4, 4), (1, 6, 5, 5)]
)
def test_fisher_matches_scipy(table: tuple[int, int, int, int]) -> None:
    sa, na, sb, nb = table
    expected = stats.fisher_exact([[sa, na - sa], [sb, nb - sb]]).pvalue
    assert fisher_exact(sa, na, sb, nb) == pytest.approx(expected, rel=1e-9)


def test_power_against_a_simulated_t_test() -> None:
    """The non-central t power against the rejection rate of simulated two-sample t-tests."""
    rng = np.random.default_rng(0)
    n, diff, sd, trials = 5, 1.5, 1.0, 20000
    a = rng.normal(diff, sd, (trials, n))
    b = rng.normal(0.0, sd, (trials, n))
    rejected = np.mean(stats.ttest_ind(a, b, axis=1).pvalue < 0.05)
    assert power_two_sample(diff, sd, n) == pytest.approx(rejected, abs=0.015)


def test_seeds_for_power_is_the_smallest_n_reaching_80_percent() -> None:
    n = seeds_for_power(1.0, 1.0)
    assert power_two_sample(1.0, 1.0, n) >= 0.8 > power_two_sample(1.0, 1.0, n - 1)
    assert n == 17  # the textbook value for Cohen's d = 1 (two-sided alpha 0.05)
    assert seeds_for_power(1e-6, 1.0) is None  # no realistic number of seeds
    # a large effect: few seeds (scipy's non-central t returns NaN far in the tail; the limit is used)
    assert seeds_for_power(2.0, 0.5) == 3 and power_two_sample(2.0, 0.5, 100) == pytest.approx(1.0)


def test_judge_best_cases() -> None:
    # ours agrees with the paper and the gap is significant: holds
    verdict = judge_best(Arm("lmi", (1.0, 1.1, 0.9)), Arm("l1", (2.0, 2.1, 1.9)), True, lower_is_better=True)
    assert verdict.outcome == "holds" and verdict.test == "welch" and verdict.p < 0.05
    # the rival is ahead significantly: does not hold (the recomputed Exp3 case)
    verdict = judge_best(Arm("lmi", tuple(LMI)), Arm("ssim", tuple(SSIM)), False, lower_is_better=True)
    assert verdict.outcome == "does not hold" and "p = 0.047" in verdict.effect()
    # inside the spread: undecided, with the seeds 80 % power would need
    verdict = judge_best(Arm("a", (1.0, 1.5, 0.5)), Arm("b", (1.2, 1.7, 0.7)), True, lower_is_better=True)
    assert verdict.outcome == "undecided" and verdict.seeds_needed > 3
    # significant but under the 1 % margin: undecided
    verdict = judge_best(Arm("a", (100.0, 100.0001)), Arm("b", (100.5, 100.5001)), True, lower_is_better=True)
    assert verdict.outcome == "undecided" and "1%" in verdict.reason
    # one seed: no test
    assert judge_best(Arm("a", (1.0,)), Arm("b", (2.0, 3.0)), True, True).outcome == "undecided"


def test_bimodal_cells_compare_success_rates() -> None:
    learned = Arm("lmi", (0.9, 0.95, 0.92, 0.93, 0.94, 0.91), (True,) * 6)
    failed = Arm("l1", (0.1, 0.2, 0.1, 0.9, 0.1, 0.1), (False, False, False, True, False, False))
    verdict = judge_best(learned, failed, True, lower_is_better=False)
    assert verdict.test == "fisher" and verdict.outcome == "holds"
    assert verdict.p == pytest.approx(stats.fisher_exact([[6, 0], [1, 5]]).pvalue)
    assert failed.learned_values == (0.9,)
    # 3 of 5 against 5 of 5 is no significant difference in success rate
    few = Arm("x", (0.9, 0.9, 0.9, 0.1, 0.1), (True, True, True, False, False))
    all_ = Arm("y", (0.8,) * 5, (True,) * 5)
    assert judge_best(few, all_, True, lower_is_better=False).outcome == "undecided"
