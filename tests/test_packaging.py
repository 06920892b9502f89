"""`pip install deepmi` is the library alone: deepmi/ never imports the reproduction stack.

Every module under ``deepmi`` is imported in a fresh interpreter; what that loads must come from the
base dependencies of pyproject.toml (and their own dependencies), and never from Hydra, Lightning,
OmegaConf, wandb or the other ``repro`` extras. pyproject's base dependencies must not list them.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO_ROOT

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11")

# Top-level modules of the reproduction stack (and of optional extras) that deepmi must not import.
FORBIDDEN_MODULES = (
    "hydra",
    "lightning",
    "pytorch_lightning",
    "lightning_fabric",
    "omegaconf",
    "wandb",
    "torchmetrics",
    "submitit",
    "pooch",
    "pykitti",
    "matplotlib",
    "skimage",
    "sklearn",
    "monai",
)
FORBIDDEN_DISTS = (
    "hydra-core",
    "lightning",
    "pytorch-lightning",
    "omegaconf",
    "wandb",
    "torchmetrics",
    "pooch",
)

_IMPORT_ALL = """
import json, pkgutil, sys
before = set(sys.modules)
import deepmi
names = sorted(m.name for m in pkgutil.walk_packages(deepmi.__path__, "deepmi."))
for name in names:
    __import__(name)
loaded = sorted({m.split(".")[0] for m in set(sys.modules) - before})
print(json.dumps({"modules": names, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def imported() -> dict[str, list[str]]:
    """Import every deepmi module in a fresh interpreter; the modules it walked and what got loaded."""
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def _closure(requirements: list[str]) -> set[str]:
    """The installed distributions the requirements pull in, transitively (markers evaluated, no extras)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [Requirement(r) for r in md.requires(name) or []]
        except md.PackageNotFoundError:
            pass
    return seen


def test_every_deepmi_module_imports_without_the_reproduction_stack(imported: dict[str, list[str]]) -> None:
    assert len(imported["modules"]) > 10 and "deepmi.data.download" in imported["modules"]
    bad = sorted(set(imported["loaded"]) & set(FORBIDDEN_MODULES))
    assert not bad, f"importing deepmi loads {bad}: import them inside the function that needs them"


def test_what_deepmi_loads_is_declared_in_the_base_dependencies(
    imported: dict[str, list[str]], pyproject: dict
) -> None:
    allowed = _closure(pyproject["project"]["dependencies"])
    owners = md.packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    undeclared = {}
    for module in imported["loaded"]:
        if module in stdlib or module == "deepmi" or module not in owners:
            continue  # the standard library, deepmi itself, interpreter internals
        dists = {canonicalize_name(d) for d in owners[module]}
        if not dists & allowed:
            undeclared[module] = sorted(dists)
    assert not undeclared, f"deepmi imports {undeclared} at import time but pyproject does not depend on them"


def test_base_dependencies_are_the_library_only(pyproject: dict) -> None:
    base = {_name(r) for r in pyproject["project"]["dependencies"]}
    assert {"torch", "numpy"} <= base
    assert not base & set(FORBIDDEN_DISTS), f"base dependencies list {sorted(base & set(FORBIDDEN_DISTS))}"


def test_repro_extra_holds_the_reproduction_stack(pyproject: dict) -> None:
    extras = pyproject["project"]["optional-dependencies"]
    repro = {_name(r) for r in extras["repro"]}
    assert {"lightning", "hydra-core", "omegaconf", "wandb", "torchmetrics", "pooch", "pyyaml"} <= repro
    assert "deepmi[repro]" in [re.sub(r"\s", "", r) for r in extras["dev"]]
    assert {"pytest", "ruff"} <= {_name(r) for r in extras["dev"]}


def test_constraints_pin_every_direct_dependency(pyproject: dict) -> None:
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    project = pyproject["project"]
    direct = list(project["dependencies"]) + [
        r for reqs in project["optional-dependencies"].values() for r in reqs
    ]
    names = {_name(r) for r in direct if not r.replace(" ", "").startswith("deepmi[")}
    names.discard("torchvision")
    missing = sorted(names - set(pins))
    assert not missing, f"constraints.txt pins no version of {missing}"
