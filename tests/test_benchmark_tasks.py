"""deepmi.benchmark: task samplers against closed forms and Monte Carlo, dI/drho against finite
differences, the maps' invertibility, KSG against scikit-learn, and (when installed) benchmark-mi."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepmi.benchmark import TRANSFORMS, Task, apply_transform, ksg_mutual_information

GEN_SEED = 1234


def _gen(seed: int = GEN_SEED) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _joint_covariance(task: Task, rho: float) -> np.ndarray:
    """The base family's joint correlation (dispersion) matrix, built entry by entry."""
    n = task.dim_x + task.dim_y
    if task.base == "dense":
        return np.full((n, n), rho) + (1 - rho) * np.eye(n)
    cov = np.eye(n)
    for i in range(task.n_pairs):
        cov[i, task.dim_x + i] = cov[task.dim_x + i, i] = rho
    return cov


def _gaussian_mi_logdet(cov: np.ndarray, dim_x: int) -> float:
    ld = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
    return 0.5 * (ld(cov[:dim_x, :dim_x]) + ld(cov[dim_x:, dim_x:]) - ld(cov))


@pytest.mark.parametrize(
    "task",
    [
        Task("sparse", 1, 1, 0.75, n_pairs=1),
        Task("sparse", 5, 5, 0.8, n_pairs=2),
        Task("dense", 3, 4, 0.5),
        Task("dense", 25, 25, 0.5),
        Task("dense", 2, 2, -0.2),
    ],
    ids=lambda t: t.name,
)
def test_gaussian_mi_matches_numpy_logdet(task):
    cov = _joint_covariance(task, task.rho)
    assert task.mutual_information() == pytest.approx(_gaussian_mi_logdet(cov, task.dim_x), rel=1e-10)


@pytest.mark.parametrize(
    "task",
    [Task("sparse", 3, 3, 0.6, n_pairs=2), Task("dense", 3, 2, 0.4)],
    ids=lambda t: t.name,
)
def test_gaussian_samples_have_the_covariance_and_mi(task):
    n = 40_000
    x, y = task.sample_base(n, _gen(), dtype=torch.float64)
    xy = torch.cat([x, y], 1).numpy()
    cov = _joint_covariance(task, task.rho)
    assert np.abs(np.cov(xy.T) - cov).max() < 0.03
    # Monte-Carlo MI: E[log p(x, y) - log p(x) - log p(y)] under the closed-form densities
    mvn = torch.distributions.MultivariateNormal
    c = torch.tensor(cov)
    dx = task.dim_x
    xy_t = torch.tensor(xy)
    log_ratio = (
        mvn(torch.zeros(len(cov), dtype=torch.float64), c).log_prob(xy_t)
        - mvn(torch.zeros(dx, dtype=torch.float64), c[:dx, :dx]).log_prob(xy_t[:, :dx])
        - mvn(torch.zeros(len(cov) - dx, dtype=torch.float64), c[dx:, dx:]).log_prob(xy_t[:, dx:])
    )
    sem = float(log_ratio.std()) / math.sqrt(n)
    assert float(log_ratio.mean()) == pytest.approx(task.mutual_information(), abs=5 * sem + 1e-3)


@pytest.mark.parametrize(
    "task",
    [
        Task("student", 1, 1, 0.0, dof=1),
        Task("student", 2, 2, 0.0, dof=1),
        Task("student", 3, 3, 0.0, dof=2),
        Task("student", 2, 3, 0.6, n_pairs=2, dof=3),
    ],
    ids=lambda t: t.name,
)
def test_student_mi_matches_monte_carlo_with_scipy_densities(task):
    stats = pytest.importorskip("scipy.stats")
    n = 40_000
    x, y = task.sample_base(n, _gen(), dtype=torch.float64)
    x, y = x.numpy(), y.numpy()
    cov = _joint_covariance(task, task.rho)
    dx = task.dim_x
    t = stats.multivariate_t
    log_ratio = (
        t(shape=cov, df=task.dof).logpdf(np.hstack([x, y]))
        - t(shape=cov[:dx, :dx], df=task.dof).logpdf(x).reshape(n)
        - t(shape=cov[dx:, dx:], df=task.dof).logpdf(y).reshape(n)
    )
    sem = log_ratio.std() / math.sqrt(n)
    assert log_ratio.mean() == pytest.approx(task.mutual_information(), abs=5 * sem + 2e-3)


def test_student_samples_have_the_t_covariance():
    task = Task("student", 2, 2, 0.5, n_pairs=1, dof=3)
    x, y = task.sample_base(400_000, _gen(), dtype=torch.float64)
    cov = np.cov(torch.cat([x, y], 1).numpy().T)
    # Student-t with dispersion S has covariance dof / (dof - 2) S; with dof = 3 the 4th moment is
    # infinite, so the sample covariance converges slowly: a loose tolerance
    expected = 3.0 * _joint_covariance(task, 0.5)
    assert np.abs(cov - expected).max() < 0.35


@pytest.mark.parametrize(
    "task",
    [
        Task("sparse", 3, 3, 0.5, n_pairs=2),
        Task("dense", 5, 5, 0.5),
        Task("dense", 1, 3, 0.3),
        Task("student", 3, 3, 0.5, n_pairs=3, dof=2),
    ],
    ids=lambda t: t.name,
)
@pytest.mark.parametrize("rho", [0.2, 0.5, 0.8])
def test_mi_gradient_matches_finite_differences(task, rho):
    h = 1e-6
    fd = (task.mutual_information(rho + h) - task.mutual_information(rho - h)) / (2 * h)
    assert task.mi_gradient(rho) == pytest.approx(fd, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("transform", [t for t in TRANSFORMS if t is not None])
@pytest.mark.parametrize("is_y", [False, True])
def test_maps_are_invertible(transform, is_y):
    v = torch.randn(500, 4, generator=_gen(), dtype=torch.float64)
    if transform == "normal_cdf":
        v = v.clamp(-5, 5)  # Phi saturates in float64 beyond ~8 sigma
    back = apply_transform(transform, apply_transform(transform, v, is_y=is_y), is_y=is_y, inverse=True)
    torch.testing.assert_close(back, v, rtol=1e-9, atol=1e-9)


def test_spiral_rotates_by_the_squared_norm_in_one_plane():
    v = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    out = apply_transform("spiral", v)  # X: plane (0, 1), speed 1/3
    a0, a1 = 1 / 3, 2 / 3
    torch.testing.assert_close(out[0], torch.tensor([math.cos(a0), math.sin(a0), 0.0], dtype=torch.float64))
    torch.testing.assert_close(out[1], torch.tensor([-math.sin(a1), math.cos(a1), 1.0], dtype=torch.float64))
    torch.testing.assert_close(out.norm(dim=1), v.norm(dim=1))


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_mapped_task_is_the_map_of_the_base_samples_with_the_same_truth(transform):
    base = Task("sparse", 3, 3, 0.6, n_pairs=2)
    mapped = Task("sparse", 3, 3, 0.6, n_pairs=2, transform=transform)
    xb, yb = base.sample(200, _gen())
    xm, ym = mapped.sample(200, _gen())
    torch.testing.assert_close(xm, apply_transform(transform, xb))
    torch.testing.assert_close(ym, apply_transform(transform, yb, is_y=True))
    assert mapped.mutual_information() == base.mutual_information()
    assert mapped.mi_gradient() == base.mi_gradient()


def test_samples_are_differentiable_in_rho_and_x_depends_on_rho_only_for_dense():
    for task in (Task("sparse", 3, 3, 0.5, n_pairs=2, transform="spiral"), Task("dense", 3, 3, 0.5)):
        rho = torch.tensor(0.5, requires_grad=True)
        x, y = task.sample(64, _gen(), rho=rho)
        assert y.requires_grad
        assert x.requires_grad == task.x_depends_on_rho


def test_grouped_samples_are_draws_of_the_gaussian_channel():
    task = Task("sparse", 2, 3, 0.7, n_pairs=2)
    x, y = task.sample_grouped(300, 200, _gen(), dtype=torch.float64)
    assert x.shape == (300, 2) and y.shape == (300, 200, 3)
    cond_mean = y.mean(1)
    torch.testing.assert_close(cond_mean[:, :2], 0.7 * x, atol=0.35, rtol=0)
    assert abs(float(y[..., :2].std(1).mean()) - math.sqrt(1 - 0.49)) < 0.02
    with pytest.raises(ValueError, match="sparse"):
        Task("dense", 2, 2, 0.5).sample_grouped(4, 3, _gen())


def test_bad_tasks_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown base"):
        Task("laplace", 2, 2, 0.5)
    with pytest.raises(ValueError, match="unknown transform"):
        Task("sparse", 2, 2, 0.5, n_pairs=1, transform="wiggly")
    with pytest.raises(ValueError, match="spiral needs"):
        Task("sparse", 2, 2, 0.5, n_pairs=1, transform="spiral")
    with pytest.raises(ValueError, match="rho"):
        Task("sparse", 2, 2, 1.0, n_pairs=1)
    with pytest.raises(ValueError, match="dof"):
        Task("student", 2, 2, 0.0, dof=None)
    with pytest.raises(ValueError, match="n_pairs"):
        Task("sparse", 2, 2, 0.5, n_pairs=3)


def test_ksg_matches_scikit_learn_in_one_dimension():
    fs = pytest.importorskip("sklearn.feature_selection")
    x, y = Task("sparse", 1, 1, 0.75, n_pairs=1).sample(2000, _gen(), dtype=torch.float64)
    ours = ksg_mutual_information(x.numpy(), y.numpy(), k=3)
    # sklearn adds 1e-10-scale noise to break ties; otherwise the same estimator (KSG Eq. 8, max-norm)
    theirs = fs.mutual_info_regression(x.numpy(), y.numpy()[:, 0], n_neighbors=3, random_state=0)[0]
    assert ours == pytest.approx(theirs, abs=1e-4)


def test_ksg_is_close_to_the_truth_and_near_zero_for_independent_data():
    pytest.importorskip("scipy")
    task = Task("sparse", 3, 3, 0.6, n_pairs=2)
    x, y = task.sample(3000, _gen(), dtype=torch.float64)
    assert ksg_mutual_information(x.numpy(), y.numpy()) == pytest.approx(task.mutual_information(), abs=0.06)
    rng = np.random.default_rng(0)
    assert abs(ksg_mutual_information(rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2)))) < 0.03
    with pytest.raises(ValueError, match="same N"):
        ksg_mutual_information(np.zeros((5, 1)), np.zeros((6, 1)))
    with pytest.raises(ValueError, match="k must"):
        ksg_mutual_information(rng.normal(size=(5, 1)), rng.normal(size=(5, 1)), k=5)


# ---- benchmark-mi (JAX): optional, skipped when absent -----------------------------------------

_SPARSE_3 = "multinormal-sparse-3-3-2-2.0"
BMI_TASKS = [
    Task("sparse", 1, 1, 0.75, n_pairs=1, bmi_id="1v1-normal-0.75"),
    Task("dense", 5, 5, 0.5, bmi_id="multinormal-dense-5-5-0.5"),
    Task("sparse", 5, 5, 0.8, n_pairs=2, bmi_id="multinormal-sparse-5-5-2-2.0"),
    Task("dense", 25, 25, 0.5, bmi_id="multinormal-dense-25-25-0.5"),
    Task("student", 2, 2, 0.0, dof=1, bmi_id="student-identity-2-2-1"),
    Task("student", 5, 5, 0.0, dof=3, bmi_id="student-identity-5-5-3"),
    Task("sparse", 3, 3, 0.8, n_pairs=2, transform="half_cube", bmi_id=f"half_cube-{_SPARSE_3}"),
    Task("sparse", 5, 5, 0.8, n_pairs=2, transform="spiral", bmi_id="spiral-multinormal-sparse-5-5-2-2.0"),
    Task("sparse", 3, 3, 0.8, n_pairs=2, transform="normal_cdf", bmi_id=f"normal_cdf-{_SPARSE_3}"),
    Task("student", 3, 3, 0.0, dof=2, transform="asinh", bmi_id="asinh-student-identity-3-3-2"),
]


def _spearman(a: np.ndarray) -> np.ndarray:
    ranks = a.argsort(0).argsort(0).astype(float)
    return np.corrcoef(ranks.T)


@pytest.mark.parametrize("task", BMI_TASKS, ids=lambda t: t.bmi_id)
def test_samplers_agree_with_benchmark_mi(task):
    bmi = pytest.importorskip("bmi")
    theirs = bmi.benchmark.BENCHMARK_TASKS[task.bmi_id]
    assert (theirs.dim_x, theirs.dim_y) == (task.dim_x, task.dim_y)
    assert task.mutual_information() == pytest.approx(float(theirs.mutual_information), rel=1e-9)
    n = 20_000
    xb, yb = (np.asarray(v, dtype=np.float64) for v in theirs.sample(n, seed=0))
    xo, yo = (v.numpy() for v in task.sample(n, _gen(), dtype=torch.float64))
    ours, ref = np.hstack([xo, yo]), np.hstack([xb, yb])
    # rank correlations and quartiles: defined even for Student-t with 1 dof (no moments)
    assert np.abs(_spearman(ours) - _spearman(ref)).max() < 0.04
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    scale = np.quantile(ref, 0.9, axis=0) - np.quantile(ref, 0.1, axis=0)
    assert (np.abs(np.quantile(ours, q, axis=0) - np.quantile(ref, q, axis=0)) / scale).max() < 0.04
