"""Evaluation metrics of the papers' experiments (plain torch; no Hydra, no Lightning).

- :mod:`deepmi.metrics.depth`: DeepMI Exp3 (Sec. 5.3), depth and disparity errors.
"""

from deepmi.metrics.depth import (
    DEPTH_METRICS,
    DEPTH_SUM_KEYS,
    DISPARITY_METRICS,
    DISPARITY_SUM_KEYS,
    depth_error_sums,
    depth_metrics,
    depth_metrics_from_sums,
    disparity_error_sums,
    disparity_metrics,
    disparity_metrics_from_sums,
    split_depth_median,
)

__all__ = [
    "DEPTH_METRICS",
    "DEPTH_SUM_KEYS",
    "DISPARITY_METRICS",
    "DISPARITY_SUM_KEYS",
    "depth_error_sums",
    "depth_metrics",
    "depth_metrics_from_sums",
    "disparity_error_sums",
    "disparity_metrics",
    "disparity_metrics_from_sums",
    "split_depth_median",
]
