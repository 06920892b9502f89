"""The README's library example runs as written, on random tensors."""

from __future__ import annotations

import re

import torch

from tests.conftest import REPO_ROOT


def test_readme_library_example_runs() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## The library\n\n```python\n(.*?)```", text, re.S)
    assert block, "README.md lost its '## The library' python example"
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    assert 0 <= float(namespace["loss"]) <= 1  # L_LMI is bounded (Eq. 13)
    assert namespace["p_xy"].shape == (4, 11, 11)
    # SSGE on a standard normal: the score -x, recovered to within a loose tolerance
    assert float((namespace["score"] + namespace["samples"]).abs().mean()) < 0.5
    assert isinstance(namespace["per_sample"], torch.Tensor) and namespace["per_sample"].shape == (4,)


def test_every_figure_the_docs_show_is_in_the_repository() -> None:
    """An image or page link in README.md, RESULTS.md, results/ or docs/ names a file the repository has."""
    pages = [
        REPO_ROOT / "README.md",
        REPO_ROOT / "RESULTS.md",
        *sorted((REPO_ROOT / "results").glob("*.md")),
        *sorted((REPO_ROOT / "docs").glob("*.md")),
    ]
    missing = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s#]+\.(?:png|md))(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).is_file():
                missing.append(f"{page.relative_to(REPO_ROOT)}: {target}")
    assert not missing, missing
