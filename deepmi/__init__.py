"""deepmi: mutual-information losses and estimators for deep networks.

- ``deepmi.losses``: DeepMI's fuzzy-histogram losses (L_LMI, L_MI) and the pixel baselines.
- ``deepmi.estimators``: MIGE's score-based MI gradients (SSGE) and variational MI bounds.
- ``deepmi.models``, ``deepmi.data``: the networks and datasets of the papers' experiments.

The library imports neither Hydra nor Lightning.
"""

__version__ = "0.1.0"
