"""Significance tests behind every verdict of the results pages (the rule: docs/verdicts.md).

A paper's claim "row A is best in this column" is decided against one rival: the runner-up when A
is our best row, our best row otherwise. On per-seed values:

- Welch's two-sided t-test (unequal variances), with the 95 % interval of the difference of means;
  a difference counts only when p < ALPHA *and* it exceeds RELATIVE_MARGIN of the larger mean
  (two runs at chance that differ in the fourth digit are not a finding). When undecided, the
  seeds per arm that would give 80 % power at the observed effect tell "a tie" from "too few seeds".
- Where either cell has seeds that did not beat the trivial baseline (a bimodal cell: some seeds
  learn, others fail), means mix two populations, so the success rates are compared instead with
  Fisher's exact test; the learned seeds' mean is reported apart.

Statistics are written out here (the t statistic, Welch-Satterthwaite degrees of freedom, the
interval, Fisher's hypergeometric sum); only the t and non-central t distribution functions come
from scipy. tests/test_verdicts.py checks each against scipy's own tests.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

ALPHA = 0.05
RELATIVE_MARGIN = 0.01
TARGET_POWER = 0.8
MAX_SEEDS = 1000  # beyond this "seeds for 80 % power" reads as "no realistic number of seeds"


@dataclass(frozen=True)
class Welch:
    """Welch's test of mean(a) - mean(b) = 0."""

    diff: float  # mean(a) - mean(b)
    low: float  # 95 % interval of the difference
    high: float
    t: float
    df: float
    p: float


def welch_test(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> Welch:
    """Two-sided Welch t-test and the (1 - alpha) interval of mean(a) - mean(b); both need >= 2 values.

    Zero variance on both sides gives p = 0 for any non-zero difference (and 1 for none): the
    seeds agree exactly, so any gap is certain at this data.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's test needs two or more values per side, got {len(a)} and {len(b)}")
    var_a, var_b = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(var_a + var_b)
    if se == 0:
        return Welch(diff, diff, diff, math.copysign(math.inf, diff) if diff else 0.0, math.inf,
                     0.0 if diff else 1.0)  # fmt: skip
    df = (var_a + var_b) ** 2 / (var_a**2 / (len(a) - 1) + var_b**2 / (len(b) - 1))
    t = diff / se
    p = 2 * stats.t.sf(abs(t), df)
    half = stats.t.ppf(1 - alpha / 2, df) * se
    return Welch(diff, diff - half, diff + half, t, df, float(p))


def fisher_exact(success_a: int, n_a: int, success_b: int, n_b: int) -> float:
    """Two-sided p of Fisher's exact test on a 2x2 table of successes and failures.

    Conditioning on the margins, the successes of a follow a hypergeometric law; the p-value sums
    the probabilities of every table no more likely than the observed one (scipy's convention).
    """
    if not (0 <= success_a <= n_a and 0 <= success_b <= n_b):
        raise ValueError(f"successes must lie in [0, n]: got {success_a}/{n_a} and {success_b}/{n_b}")
    total, successes = n_a + n_b, success_a + success_b

    def probability(k: int) -> float:
        return math.comb(n_a, k) * math.comb(n_b, successes - k) / math.comb(total, successes)

    observed = probability(success_a)
    support = range(max(0, successes - n_b), min(n_a, successes) + 1)
    return min(1.0, sum(p for k in support if (p := probability(k)) <= observed * (1 + 1e-7)))


def power_two_sample(diff: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of a two-sided two-sample t-test with n seeds per arm, true difference diff, common sd."""
    if sd <= 0:
        return 1.0 if diff else alpha
    df = 2 * n - 2
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = abs(diff) / (sd * math.sqrt(2 / n))
    power = float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))
    if not math.isfinite(power):  # scipy's non-central t fails far in the tail: the normal limit
        power = float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))
    return power


def seeds_for_power(diff: float, sd: float, power: float = TARGET_POWER, alpha: float = ALPHA) -> int | None:
    """Smallest seeds per arm reaching ``power`` at this effect and spread; None beyond MAX_SEEDS."""
    if diff == 0:
        return None
    lo, hi = 2, MAX_SEEDS
    if power_two_sample(diff, sd, hi, alpha) < power:
        return None
    while lo < hi:  # power grows with n: bisect
        mid = (lo + hi) // 2
        if power_two_sample(diff, sd, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class Arm:
    """One cell's per-seed values, and which of them beat the trivial baseline."""

    name: str
    values: tuple[float, ...]
    learned: tuple[bool, ...] = ()  # empty: every seed counts as learned (no baseline to beat)

    @property
    def successes(self) -> int:
        return sum(self.learned) if self.learned else len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def learned_values(self) -> tuple[float, ...]:
        if not self.learned:
            return self.values
        return tuple(v for v, ok in zip(self.values, self.learned, strict=True) if ok)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim "claimed is best" against one rival, and the numbers behind it."""

    outcome: str  # "holds", "does not hold", "undecided"
    claimed: Arm
    rival: Arm
    test: str  # "welch", "fisher" or "none"
    p: float | None = None
    welch: Welch | None = None
    seeds_needed: int | None = None  # per arm, for 80 % power at the observed effect (undecided only)
    reason: str = ""

    def effect(self, digits: int = 3) -> str:
        """'Δ = d [low, high], p = x' (claimed minus rival) or the success rates with Fisher's p."""
        if self.test == "welch" and self.welch is not None:
            return welch_text(self.welch, digits)
        if self.test == "fisher":
            c, r = self.claimed, self.rival
            rates = f"learned {c.successes}/{len(c.values)} vs {r.successes}/{len(r.values)}"
            return f"{rates}, Fisher {p_text(self.p)}"
        return self.reason


def welch_text(w: Welch, digits: int = 3) -> str:
    """'Δ = d [low, high], p = x': the difference of means, its interval and Welch's p."""
    return f"Δ = {w.diff:.{digits}g} [{w.low:.{digits}g}, {w.high:.{digits}g}], {p_text(w.p)}"


def p_text(p: float | None) -> str:
    """'p = 0.047', 'p < 0.001', or '—' when there is no test."""
    if p is None:
        return "—"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def judge_best(claimed: Arm, rival: Arm, claimed_is_ours_best: bool, lower_is_better: bool) -> Verdict:
    """Does "claimed is the best row" hold against ``rival`` (the runner-up, or our best row)?

    claimed_is_ours_best: True when the claimed row has our best mean, so a significant difference
    confirms the claim; False when the rival is ahead, so a significant difference refutes it.
    """
    if claimed.learned and rival.learned and claimed.successes == rival.successes == 0:
        neither = "no seed beats the trivial baseline on either side"
        return Verdict("undecided", claimed, rival, "none", reason=neither)
    if claimed.learned and rival.learned and (claimed.successes < len(claimed.values)
                                              or rival.successes < len(rival.values)):  # fmt: skip
        p = fisher_exact(claimed.successes, len(claimed.values), rival.successes, len(rival.values))
        rate_c = claimed.successes / len(claimed.values)
        rate_r = rival.successes / len(rival.values)
        if p < ALPHA:
            outcome = "holds" if rate_c > rate_r else "does not hold"
            return Verdict(outcome, claimed, rival, "fisher", p, reason="success rates differ")
        split = "seeds split between learning and failing; success rates not different"
        return Verdict("undecided", claimed, rival, "fisher", p, reason=split)
    if len(claimed.values) < 2 or len(rival.values) < 2:
        return Verdict("undecided", claimed, rival, "none", reason="one seed: no test possible")
    welch = welch_test(claimed.values, rival.values)
    big_enough = abs(welch.diff) > RELATIVE_MARGIN * max(abs(claimed.mean), abs(rival.mean))
    if welch.p < ALPHA and big_enough:
        claimed_ahead = (welch.diff < 0) == lower_is_better
        if claimed_ahead != claimed_is_ours_best:  # cannot happen: the means order the rows
            raise AssertionError("the claimed row's rank and the sign of the difference disagree")
        outcome = "holds" if claimed_is_ours_best else "does not hold"
        return Verdict(outcome, claimed, rival, "welch", welch.p, welch)
    pooled = math.sqrt((statistics.variance(claimed.values) + statistics.variance(rival.values)) / 2)
    needed = seeds_for_power(welch.diff, pooled)
    reason = "p ≥ 0.05" if welch.p >= ALPHA else f"gap under {RELATIVE_MARGIN:.0%} of the value"
    return Verdict("undecided", claimed, rival, "welch", welch.p, welch, needed, reason)
