"""MI estimators: MIGE's score-based MI gradients (SSGE) and the variational baselines.

See docs/estimators.md for the mathematics and usage.
"""

from .bottleneck_objectives import MIGEIBObjective, MINEIBObjective, VIBObjective
from .bounds import BOUNDS, MINEBound, dv_bound, infonce_bound, jsd_bound, nwj_bound
from .critics import ConcatCritic, CriticMIEstimator, SeparableCritic, mlp
from .infomax_objectives import CriticInfoMaxObjective, MIGEInfoMaxObjective
from .mige import (
    mige_conditional_entropy_surrogate,
    mige_entropy_surrogate,
    mige_mi_surrogate,
    mige_stochastic_mi_surrogate,
)
from .mixture_score import gaussian_mixture_score
from .objective import MIObjective
from .prior_matching import PriorMatching, prior_matching_losses
from .projection import projection_matrix, random_projection
from .registry import OBJECTIVES, build_objective, objective_names
from .ssge import median_bandwidth, rbf_gram, ssge_score
from .vib import gaussian_kl_to_standard_normal

__all__ = [
    "BOUNDS",
    "OBJECTIVES",
    "ConcatCritic",
    "CriticInfoMaxObjective",
    "CriticMIEstimator",
    "MIGEIBObjective",
    "MIGEInfoMaxObjective",
    "MINEBound",
    "MINEIBObjective",
    "MIObjective",
    "PriorMatching",
    "SeparableCritic",
    "VIBObjective",
    "build_objective",
    "dv_bound",
    "gaussian_kl_to_standard_normal",
    "gaussian_mixture_score",
    "infonce_bound",
    "jsd_bound",
    "median_bandwidth",
    "mige_conditional_entropy_surrogate",
    "mige_entropy_surrogate",
    "mige_mi_surrogate",
    "mige_stochastic_mi_surrogate",
    "mlp",
    "nwj_bound",
    "objective_names",
    "prior_matching_losses",
    "projection_matrix",
    "random_projection",
    "rbf_gram",
    "ssge_score",
]
