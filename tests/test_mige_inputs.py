"""MIGE's surrogates refuse integer tensors instead of casting them silently (issue 29 item 13)."""

from __future__ import annotations

import pytest
import torch

from deepmi.estimators.mige import mige_entropy_surrogate, mige_mi_surrogate


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_integer_inputs_are_refused_with_the_conversion(dtype: torch.dtype) -> None:
    x = torch.randint(0, 255, (16, 4)).to(dtype)
    z = torch.randn(16, 3, requires_grad=True)
    with pytest.raises(TypeError, match=rf"x is a {dtype} tensor.*x\.float\(\) / 255"):
        mige_mi_surrogate(x, z)
    with pytest.raises(TypeError, match=rf"z is a {dtype} tensor"):
        mige_mi_surrogate(z.detach(), x)
    with pytest.raises(TypeError, match=rf"z is a {dtype} tensor"):
        mige_entropy_surrogate(x)


def test_the_same_values_as_floats_are_taken() -> None:
    x = torch.randint(0, 255, (16, 4)).float() / 255
    z = torch.randn(16, 3, requires_grad=True)
    mige_mi_surrogate(x, z).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
