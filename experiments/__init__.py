"""The papers' reproduction: ``tasks`` (Lightning modules), ``datasets`` (what they read),
``runner`` (config -> fit/test -> metrics.json) and ``reporting`` (records -> paper tables).

Importing the package sets ``OMP_WAIT_POLICY=passive`` unless it is set: busy-waiting OpenMP
threads stall the small eigendecompositions of SSGE on a shared CPU. It only takes effect if
this import comes before torch's, so every entry point (run.py, tests/conftest.py,
scripts/bench_mige.py, ``python -m experiments.tasks.mige_toy``) imports this package first.
"""

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
