"""Optional ``torch.compile`` of the elementwise kernels, with a loud fallback to eager.

Inductor fuses each kernel (bin coordinates, memberships, products, the reduction) into one pass
over the pixels; on CPU that is several times faster (~5x for L_LMI) than eager code, where every
step materialises a ``(B, P)`` temporary.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch


def compile_supported() -> tuple[bool, str]:
    """Whether ``torch.compile`` can run here, and why not."""
    if not hasattr(torch, "compile"):
        return False, f"torch {torch.__version__} has no torch.compile"
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return False, "torch.compile (dynamo) does not support this Python/platform"
    except Exception as exc:  # a broken install must not break the eager path
        return False, f"torch._dynamo failed to import: {exc}"
    return True, ""


class MaybeCompiled:
    """Call ``fn`` eagerly, or through ``torch.compile`` when asked and it works.

    The first failure to compile (no C++ compiler, unsupported platform, ...) warns once with the
    reason and switches this kernel to eager for the rest of the process.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self._compiled: Callable[..., Any] | None = None
        self.failed: str | None = None

    def __call__(self, *args: Any, compile: bool = False) -> Any:
        if not compile or self.failed is not None:
            return self.fn(*args)
        try:
            if self._compiled is None:
                ok, why = compile_supported()
                if not ok:
                    raise RuntimeError(why)
                self._compiled = torch.compile(self.fn)
            return self._compiled(*args)
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            warnings.warn(
                f"torch.compile of {self.fn.__name__} failed ({self.failed}); falling back to eager "
                "(same numbers, slower). Pass compile=False to silence this.",
                RuntimeWarning,
                stacklevel=3,
            )
            return self.fn(*args)
