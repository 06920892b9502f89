"""Benchmark tasks with known mutual information and known dI/drho (Czyż et al. 2023, "Beyond Normal").

Every task is a base family with a scalar parameter ``rho``, optionally pushed through the same
invertible map on each variable. MI is invariant to invertible maps of X and of Y, so the ground
truth I(rho) and its derivative dI/drho are the base family's whatever map is applied; the samples,
drawn by reparameterisation, are differentiable in ``rho``, which makes every task a ground-truth
test for MI *gradient* estimators too.

Base families (the names of benchmark-mi, ``bmi.benchmark.tasks``):

- ``sparse``: the first ``n_pairs`` coordinates of X and Y form pairs with correlation ``rho``; the
  other coordinates are independent N(0, 1). ``I = -n_pairs/2 log(1 - rho^2)``. bmi's "2-pair"
  tasks (strength 2) are this with ``n_pairs = 2`` and ``rho = 4/5``; its 1 x 1 normal is
  ``n_pairs = 1``, ``rho = 0.75``. X does not depend on rho (MIGE's circumstance I).
- ``dense``: all ``dim_x + dim_y`` coordinates have pairwise correlation ``rho`` (a common factor,
  ``sqrt(rho) u + sqrt(1 - rho) e_j``). ``I = (log det S_x + log det S_y - log det S) / 2`` with
  ``det`` of an n x n equicorrelation matrix ``(1 - rho)^(n-1) (1 + (n-1) rho)``. X depends on rho
  (circumstance II).
- ``student``: the ``sparse`` Gaussian divided by ``sqrt(w / dof)``, ``w ~ chi2(dof)`` shared by X
  and Y (multivariate Student-t with the Gaussian's correlation as dispersion). ``I`` is the
  Gaussian's MI plus a correction that depends only on dof and the dimensions (Arellano-Valle et al.
  2013, via the entropies of the standard multivariate t; bmi's ``SplitStudentT``), so dI/drho is
  the Gaussian's. With ``n_pairs = 0`` it is bmi's "student-identity".

Maps (``transform``): ``half_cube`` t -> t |t|^(1/2), ``asinh``, ``normal_cdf`` (Phi), and ``spiral``
x -> R(s |x|^2) x with R(a) the rotation by angle a in one coordinate plane (plane (0, 1) for X,
(1, 2) for Y, ``s = 1 / dim``; bmi's ``Spiral`` with the canonical so(n) generator). The rotation
keeps |x|, so the spiral is inverted by rotating back by the same angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

__all__ = [
    "BASES",
    "TRANSFORMS",
    "Task",
    "apply_transform",
    "equicorrelation_logdet",
    "student_mi_correction",
    "student_t_entropy",
]

BASES = ("sparse", "dense", "student")
TRANSFORMS = (None, "half_cube", "asinh", "normal_cdf", "spiral")


def equicorrelation_logdet(n: int, rho: float) -> float:
    """log det of the n x n matrix with unit diagonal and every off-diagonal entry ``rho``."""
    if n < 1:
        return 0.0
    return (n - 1) * math.log(1.0 - rho) + math.log(1.0 + (n - 1) * rho)


def _equicorrelation_logdet_grad(n: int, rho: float) -> float:
    if n < 2:
        return 0.0
    return -(n - 1) / (1.0 - rho) + (n - 1) / (1.0 + (n - 1) * rho)


def student_t_entropy(k: int, dof: float) -> float:
    """Differential entropy (nats) of the standard k-variate Student-t with ``dof`` degrees of freedom.

    ``h = log Gamma(dof/2) - log Gamma((dof+k)/2) + k/2 log(dof pi)
    + (dof+k)/2 (psi((dof+k)/2) - psi(dof/2))`` (Arellano-Valle et al. 2013, Eq. 7 with identity
    dispersion).
    """
    half_sum = 0.5 * (dof + k)
    digammas = torch.special.digamma(torch.tensor([half_sum, 0.5 * dof], dtype=torch.float64))
    return (
        math.lgamma(0.5 * dof)
        - math.lgamma(half_sum)
        + 0.5 * k * math.log(dof * math.pi)
        + half_sum * float(digammas[0] - digammas[1])
    )


def student_mi_correction(dim_x: int, dim_y: int, dof: float) -> float:
    """``h(t_dx) + h(t_dy) - h(t_(dx+dy))``: what a shared chi-square scale adds to the Gaussian MI."""
    joint = student_t_entropy(dim_x + dim_y, dof)
    return student_t_entropy(dim_x, dof) + student_t_entropy(dim_y, dof) - joint


def _spiral(v: Tensor, plane: tuple[int, int], speed: float, inverse: bool = False) -> Tensor:
    i, j = plane
    angle = speed * (v * v).sum(-1)
    if inverse:
        angle = -angle
    c, s = torch.cos(angle), torch.sin(angle)
    out = v.clone()
    out[..., i] = c * v[..., i] - s * v[..., j]
    out[..., j] = s * v[..., i] + c * v[..., j]
    return out


def _spiral_plane(dim: int, is_y: bool) -> tuple[int, int]:
    return (1, 2) if is_y else (0, 1)


def apply_transform(name: str | None, v: Tensor, is_y: bool = False, inverse: bool = False) -> Tensor:
    """Apply (or invert) one of ``TRANSFORMS`` to (..., dim) samples; differentiable."""
    if name is None:
        return v
    if name == "half_cube":
        return torch.sign(v) * v.abs() ** (2.0 / 3.0) if inverse else torch.sign(v) * v.abs() ** 1.5
    if name == "asinh":
        return torch.sinh(v) if inverse else torch.asinh(v)
    if name == "normal_cdf":
        if inverse:
            return math.sqrt(2.0) * torch.special.erfinv(2.0 * v - 1.0)
        return 0.5 * (1.0 + torch.special.erf(v / math.sqrt(2.0)))
    if name == "spiral":
        return _spiral(v, _spiral_plane(v.shape[-1], is_y), 1.0 / v.shape[-1], inverse)
    raise ValueError(f"unknown transform {name!r}; valid: {TRANSFORMS}")


@dataclass(frozen=True)
class Task:
    """One benchmark task: a base family at a parameter ``rho`` and an optional invertible map.

    Args:
        base: ``"sparse"``, ``"dense"`` or ``"student"`` (see the module docstring).
        dim_x, dim_y: dimensions of X and Y.
        rho: the default parameter (a pair correlation, or the dense off-diagonal correlation).
        n_pairs: correlated (X_i, Y_i) pairs of ``sparse`` and ``student``.
        dof: degrees of freedom of ``student`` (a positive integer: the chi-square is a sum of squares).
        transform: one of ``TRANSFORMS``, applied to X and to Y.
        bmi_id: the matching task id in benchmark-mi's ``BENCHMARK_TASKS``, if there is one.
    """

    base: str
    dim_x: int
    dim_y: int
    rho: float
    n_pairs: int = 0
    dof: int | None = None
    transform: str | None = None
    bmi_id: str | None = None

    def __post_init__(self) -> None:
        if self.base not in BASES:
            raise ValueError(f"unknown base {self.base!r}; valid: {BASES}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; valid: {TRANSFORMS}")
        if min(self.dim_x, self.dim_y) < 1:
            raise ValueError(f"dim_x and dim_y must be >= 1, got {self.dim_x}, {self.dim_y}")
        if self.base != "dense" and not 0 <= self.n_pairs <= min(self.dim_x, self.dim_y):
            raise ValueError(f"n_pairs={self.n_pairs} must lie in [0, min(dim_x, dim_y)]")
        if self.base == "student" and (self.dof is None or int(self.dof) != self.dof or self.dof < 1):
            raise ValueError(f"student needs a positive integer dof, got {self.dof}")
        if self.transform == "spiral" and (self.dim_x < 2 or self.dim_y < 3):
            raise ValueError("spiral needs dim_x >= 2 and dim_y >= 3 (a rotation plane in each)")
        self._check_rho(self.rho)

    def _check_rho(self, rho: float) -> None:
        lo = -1.0 / (self.dim_x + self.dim_y - 1) if self.base == "dense" else -1.0
        if not lo < float(rho) < 1.0:
            raise ValueError(f"rho={float(rho)} outside ({lo:.3g}, 1) for base {self.base!r}")

    @property
    def name(self) -> str:
        """A short id: ``[transform-]base-dxxdy[-dof][-pairs]-rho``."""
        mapped = self.transform.replace("_", "") if self.transform else None
        parts = [mapped, self.base, f"{self.dim_x}x{self.dim_y}"]
        if self.base == "student":
            parts.append(f"dof{self.dof}")
        if self.base != "dense":
            parts.append(f"{self.n_pairs}pair")
        parts.append(f"{self.rho:g}")
        return "-".join(p for p in parts if p)

    @property
    def label(self) -> str:
        base = {"sparse": "Normal", "dense": "Normal dense", "student": "Student-t"}[self.base]
        extra = f" dof {self.dof}" if self.base == "student" else ""
        sparse = f", {self.n_pairs} pairs" if self.base != "dense" and 0 < self.n_pairs < self.dim_x else ""
        mapped = {None: "", "half_cube": "Half-cube @ ", "asinh": "Asinh @ ", "normal_cdf": "Normal CDF @ ",
                  "spiral": "Spiral @ "}[self.transform]
        return f"{mapped}{base} {self.dim_x} × {self.dim_y}{extra}{sparse}"

    @property
    def x_depends_on_rho(self) -> bool:
        """True for ``dense`` (MIGE circumstance II: the first argument carries gradient too)."""
        return self.base == "dense"

    @property
    def has_gaussian_channel(self) -> bool:
        """True when Y given X is a reparameterised Gaussian channel (MIGE circumstance III applies)."""
        return self.base == "sparse"

    def at(self, rho: float) -> Task:
        """The same task at another parameter value."""
        return replace(self, rho=float(rho))

    # ---- ground truth -------------------------------------------------------------------------

    def mutual_information(self, rho: float | None = None) -> float:
        """Ground-truth I(X; Y) in nats at ``rho`` (default: the task's)."""
        r = self.rho if rho is None else float(rho)
        self._check_rho(r)
        if self.base == "dense":
            return 0.5 * (
                equicorrelation_logdet(self.dim_x, r)
                + equicorrelation_logdet(self.dim_y, r)
                - equicorrelation_logdet(self.dim_x + self.dim_y, r)
            )
        gaussian = -0.5 * self.n_pairs * math.log1p(-r * r)
        if self.base == "student":
            return gaussian + student_mi_correction(self.dim_x, self.dim_y, float(self.dof))
        return gaussian

    def mi_gradient(self, rho: float | None = None) -> float:
        """Ground-truth dI/drho at ``rho`` (the same for every invertible map)."""
        r = self.rho if rho is None else float(rho)
        self._check_rho(r)
        if self.base == "dense":
            return 0.5 * (
                _equicorrelation_logdet_grad(self.dim_x, r)
                + _equicorrelation_logdet_grad(self.dim_y, r)
                - _equicorrelation_logdet_grad(self.dim_x + self.dim_y, r)
            )
        return self.n_pairs * r / (1.0 - r * r)

    # ---- sampling -----------------------------------------------------------------------------

    def _rho_tensor(self, rho: Tensor | float | None, dtype: torch.dtype) -> Tensor:
        if rho is None:
            rho = self.rho
        if isinstance(rho, Tensor):
            self._check_rho(float(rho.detach()))
            return rho
        self._check_rho(float(rho))
        return torch.tensor(float(rho), dtype=dtype)

    def _chi2_scale(self, shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype) -> Tensor:
        # sqrt(dof / w), w ~ chi2(dof) as a sum of dof squared normals (integer dof)
        w = (torch.randn(*shape, int(self.dof), generator=generator, dtype=dtype) ** 2).sum(-1)
        return torch.sqrt(float(self.dof) / w)

    def sample_base(
        self,
        n: int,
        generator: torch.Generator,
        rho: Tensor | float | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Tensor, Tensor]:
        """(x, y) of the base family before the map; differentiable in a tensor ``rho``."""
        if n < 1:
            raise ValueError(f"n must be a positive number of samples, got {n}")
        r = self._rho_tensor(rho, dtype)
        if self.base == "dense":
            common = torch.randn(n, 1, generator=generator, dtype=dtype)
            noise = torch.randn(n, self.dim_x + self.dim_y, generator=generator, dtype=dtype)
            z = torch.sqrt(r) * common + torch.sqrt(1.0 - r) * noise
            return z[:, : self.dim_x], z[:, self.dim_x :]
        x = torch.randn(n, self.dim_x, generator=generator, dtype=dtype)
        eps = torch.randn(n, self.dim_y, generator=generator, dtype=dtype)
        y = self._channel(x, eps, r)
        if self.base == "student":
            scale = self._chi2_scale((n, 1), generator, dtype)
            x, y = x * scale, y * scale
        return x, y

    def _channel(self, x: Tensor, eps: Tensor, r: Tensor) -> Tensor:
        # y_i = rho x_i + sqrt(1 - rho^2) eps_i for the first n_pairs coordinates, eps_i elsewhere
        k = self.n_pairs
        if k == 0:
            return eps
        paired = r * x[..., :k] + torch.sqrt(1.0 - r * r) * eps[..., :k]
        return torch.cat([paired, eps[..., k:]], dim=-1)

    def sample(
        self,
        n: int,
        generator: torch.Generator,
        rho: Tensor | float | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Tensor, Tensor]:
        """n samples (x (n, dim_x), y (n, dim_y)) of the task; differentiable in a tensor ``rho``."""
        x, y = self.sample_base(n, generator, rho, dtype)
        return apply_transform(self.transform, x), apply_transform(self.transform, y, is_y=True)

    def sample_grouped(
        self,
        n: int,
        draws: int,
        generator: torch.Generator,
        rho: Tensor | float | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Tensor, Tensor]:
        """x (n, dim_x) and ``draws`` channel outputs per input, y (n, draws, dim_y) (circumstance III).

        Only for ``sparse``: Y given X is the Gaussian channel ``rho x + sqrt(1 - rho^2) eps`` (then
        mapped), a stochastic encoder of X.
        """
        if not self.has_gaussian_channel:
            raise ValueError(f"sample_grouped needs base 'sparse' (Gaussian Y | X), got {self.base!r}")
        r = self._rho_tensor(rho, dtype)
        x = torch.randn(n, self.dim_x, generator=generator, dtype=dtype)
        eps = torch.randn(n, draws, self.dim_y, generator=generator, dtype=dtype)
        y = self._channel(x.unsqueeze(1).expand(n, draws, self.dim_x), eps, r)
        return apply_transform(self.transform, x), apply_transform(self.transform, y, is_y=True)
