"""The usage examples in docs/losses.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "losses.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_doc_has_examples():
    assert python_blocks(), f"no ```python blocks in {DOC}"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_doc_example_runs(index):
    exec(compile(python_blocks()[index], f"{DOC.name}[block {index}]", "exec"), {})
