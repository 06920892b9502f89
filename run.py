"""Hydra entry point: `python run.py experiment=exp3_depth loss=lmi` (see docs/running.md).

Exit codes: 0 finished (or evaluated); 1 failed; 3 diverged; 4 stopped by a limit
(trainer.max_time); 128 + N stopped by signal N (143: SIGTERM, 130: SIGINT). A multirun records
every job, lists the ones that did not finish at its end, and exits 1 if there are any.
`python run.py resume=<run folder>` / `evaluate=<run folder>` replay a run's own overrides.
"""

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import experiments  # noqa: F401  (first of the project's imports: sets OMP_WAIT_POLICY before torch loads)
from experiments.runner.folder_options import expand_folder_options

os.environ.setdefault("DEEPMI_ROOT", str(Path(__file__).resolve().parent))
log = logging.getLogger("run")


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from experiments.runner.record import exit_code
    from experiments.runner.train import run

    # importing `lightning` (above) adds a stderr handler of its own; Hydra's root handlers already
    # print (and file) its lines, so without this each appears twice
    logging.getLogger("lightning").handlers.clear()

    if HydraConfig.get().mode == RunMode.MULTIRUN:
        try:
            run(cfg)  # the job's record says how it ended; the sweep summary lists it
        except Exception:
            log.exception("job %s failed; the sweep goes on", HydraConfig.get().runtime.output_dir)
        return
    code = exit_code(run(cfg))
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    from experiments.runner.stop_signals import RunStopped

    sys.argv = [sys.argv[0], *expand_folder_options(sys.argv[1:])]
    try:
        main()
    except RunStopped as stop:
        print(f"run.py: stopped by {stop.name}", file=sys.stderr)
        sys.exit(stop.exit_code)
