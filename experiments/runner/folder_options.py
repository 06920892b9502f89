"""``python run.py resume=<run folder>`` and ``evaluate=<run folder>``: a run's own overrides, replayed.

Run folders of multiruns are named by their overrides (``debug=smoke,loss=lmi``), and Hydra's
parser rejects a bare ``ckpt_path=logs/.../debug=smoke,loss=lmi/checkpoints/last.ckpt``
(``mismatched input '='``); the path must be quoted inside the override, and the run's overrides
must be repeated by hand. These options read the overrides the run saved
(``checkpoints/run_config.json``, else Hydra's ``.hydra/overrides.yaml``) and expand to the Hydra
command line that continues the run in its folder, or tests its last checkpoint into
``<folder>/evaluation.json`` (without rewriting the folder's ``.hydra/``).
"""

from __future__ import annotations

import json
from pathlib import Path

FOLDER_OPTIONS = ("resume", "evaluate")
# overrides a replay sets itself
_REPLACED = ("ckpt_path", "train", "hydra.run.dir", "hydra.sweep.dir", "hydra.output_subdir")


def quote_value(value: str) -> str:
    """A Hydra override value in single quotes: '=' , ',' and spaces inside are taken literally."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def saved_overrides(folder: Path) -> list[str]:
    try:
        return list(json.loads((folder / "checkpoints" / "run_config.json").read_text())["overrides"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        import yaml

        return list(yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise SystemExit(
            f"{folder} holds no saved overrides (checkpoints/run_config.json or .hydra/overrides.yaml): "
            "is it a run folder of run.py? Give the run's overrides and "
            "\"ckpt_path='<folder>/checkpoints/last.ckpt'\" instead."
        ) from error


def expand_folder_options(argv: list[str]) -> list[str]:
    """argv with ``resume=<folder>`` / ``evaluate=<folder>`` replaced by the Hydra overrides they mean."""
    for index, arg in enumerate(argv):
        option, _, value = arg.partition("=")
        if option not in FOLDER_OPTIONS or not value:
            continue
        folder = Path(value).expanduser().resolve()
        if not folder.is_dir():
            raise SystemExit(f"{option}={value}: no such run folder")
        replay = [o for o in saved_overrides(folder) if o.lstrip("+~").partition("=")[0] not in _REPLACED]
        where = [f"hydra.run.dir={quote_value(str(folder))}"]
        if option == "resume":
            added = [*where, "ckpt_path=last"]
        else:
            ckpt = folder / "checkpoints" / "last.ckpt"
            added = [*where, "hydra.output_subdir=null", "train=false", f"ckpt_path={quote_value(str(ckpt))}"]
        return [*argv[:index], *replay, *added, *argv[index + 1 :]]
    return argv
