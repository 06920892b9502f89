"""The objective registry (DIM: jsd, jsd_pm, infonce, infonce_pm, mige; IB: vib, mine_ib, mige_ib)."""

from __future__ import annotations

import math

import pytest
import torch

from deepmi.estimators import OBJECTIVES, MIObjective, build_objective

X_DIM, Z_DIM, B = 12, 4, 32

KWARGS = {
    "jsd": {"x_dim": X_DIM, "z_dim": Z_DIM, "hidden_dim": 16, "embed_dim": 8},
    "jsd_pm": {"x_dim": X_DIM, "z_dim": Z_DIM, "hidden_dim": 16, "embed_dim": 8},
    "infonce": {"x_dim": X_DIM, "z_dim": Z_DIM, "hidden_dim": 16, "embed_dim": 8, "critic": "concat"},
    "infonce_pm": {"x_dim": X_DIM, "z_dim": Z_DIM, "hidden_dim": 16, "embed_dim": 8},
    "mige": {"project_dim": 6},
    "vib": {"beta": 1e-2},
    "mine_ib": {"x_dim": X_DIM, "z_dim": Z_DIM, "hidden_dim": 16, "embed_dim": 8},
    "mige_ib": {"beta": 1e-2},
    "mige_ib_analytic": {"beta": 1e-2},
    "mige_ib_mixture": {"beta": 1e-2},
}
ADVERSARIAL = {"jsd_pm", "infonce_pm", "mine_ib"}


def _batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 3, 2, 2, generator=gen)  # image-like input, 12 features
    encoder = torch.nn.Linear(X_DIM, 2 * Z_DIM)
    out = encoder(x.flatten(1))
    mu, std = out[:, :Z_DIM], torch.nn.functional.softplus(out[:, Z_DIM:]) + 1e-3
    z = mu.unsqueeze(1) + std.unsqueeze(1) * torch.randn(B, 4, Z_DIM, generator=gen)  # (B, S, K)
    return encoder, x, z, mu, std


def test_registry_names():
    assert set(OBJECTIVES) == {
        "jsd", "jsd_pm", "infonce", "infonce_pm", "mige", "vib", "mine_ib", "mige_ib", "mige_ib_analytic",
        "mige_ib_mixture",
    }  # fmt: skip
    assert build_objective("mige_ib_analytic").conditional_score == "analytic"
    exact = build_objective("mige_ib_mixture")
    assert (exact.conditional_score, exact.marginal_score) == ("analytic", "mixture")


@pytest.mark.parametrize("name", sorted(KWARGS))
def test_every_objective_runs_and_reaches_the_encoder(name):
    torch.manual_seed(0)
    objective = build_objective(name, **KWARGS[name])
    assert isinstance(objective, MIObjective)
    bottleneck = {"vib", "mine_ib", "mige_ib", "mige_ib_analytic", "mige_ib_mixture"}
    assert objective.family == ("bottleneck" if name in bottleneck else "infomax")
    encoder, x, z, mu, std = _batch()
    code = z if objective.family == "bottleneck" else mu
    out = objective(x, code, mu=mu, std=std)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    out["loss"].backward(retain_graph=True)
    assert encoder.weight.grad is not None and torch.isfinite(encoder.weight.grad).all()
    assert encoder.weight.grad.abs().sum() > 0
    adversary = objective.adversary_parameters()
    assert bool(adversary) == (name in ADVERSARIAL)
    assert bool(adversary) == ("adversary_loss" in out)
    main_ids = {id(p) for p in objective.main_parameters()}
    assert not main_ids & {id(p) for p in adversary}
    if adversary:
        encoder.zero_grad()
        out["adversary_loss"].backward()
        assert encoder.weight.grad is None or encoder.weight.grad.abs().sum() == 0  # computed on z.detach()
        assert any(p.grad is not None for p in adversary)


def test_unknown_name_lists_valid_ones_and_fixed_choices_cannot_be_overridden():
    with pytest.raises(ValueError, match="valid: .*infonce_pm.*mige_ib"):
        build_objective("tuba")
    with pytest.raises(ValueError, match="fixes"):
        build_objective("jsd", bound="infonce", x_dim=2, z_dim=2)
    with pytest.raises(ValueError, match="critic"):
        build_objective("jsd", x_dim=2, z_dim=2, critic="bilinear")


@pytest.mark.parametrize("name", ["jsd", "infonce"])
def test_one_critic_step_lowers_the_dim_loss(name):
    torch.manual_seed(0)
    objective = build_objective(name, **KWARGS[name])
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, X_DIM, generator=gen)
    z = x[:, :Z_DIM] + 0.1 * torch.randn(B, Z_DIM, generator=gen)
    opt = torch.optim.SGD(objective.parameters(), lr=0.05)
    before = objective(x, z)["loss"]
    before.backward()
    opt.step()
    after = objective(x, z)["loss"]
    assert after.item() < before.item()
    assert objective(x, z)["mi"].item() <= math.log(B) + 1e-6 or name == "jsd"


def test_mige_objective_gradient_is_minus_the_mi_gradient():
    # encoder y = rho x + sqrt(1 - rho^2) eps; loss = -I, so d loss / d rho ~ -rho d / (1 - rho^2)
    rho = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 3, generator=gen, dtype=torch.float64)
    y = rho * x + (1 - rho**2).sqrt() * torch.randn(512, 3, generator=gen, dtype=torch.float64)
    build_objective("mige")(x, y)["loss"].backward()
    assert float(rho.grad) == pytest.approx(-0.5 * 3 / 0.75, rel=0.15)


def test_mige_ib_analytic_and_ssge_agree_in_sign_and_vib_needs_mu_std():
    torch.manual_seed(0)
    _, x, z, mu, std = _batch(3)
    grads = {}
    for mode in ("analytic", "ssge"):
        objective = build_objective("mige_ib", beta=1.0, conditional_score=mode)
        grads[mode] = torch.autograd.grad(objective(x, z, mu=mu, std=std)["loss"], mu, retain_graph=True)[0]
    cos = torch.nn.functional.cosine_similarity(grads["analytic"].flatten(), grads["ssge"].flatten(), dim=0)
    assert float(cos) > 0.5
    with pytest.raises(ValueError, match="mu"):
        build_objective("vib")(x, z)
    with pytest.raises(ValueError, match="conditional_score"):
        build_objective("mige_ib", conditional_score="exact")
    with pytest.raises(ValueError, match="marginal_score"):
        build_objective("mige_ib", marginal_score="exact")
    with pytest.raises(ValueError, match="std"):
        build_objective("mige_ib_mixture")(x, z, mu=mu)
    with pytest.raises(ValueError, match="samples_per_input"):
        build_objective("mige_ib", samples_per_input=2)
    assert build_objective("mige_ib").samples_per_input == 16
    analytic = build_objective("mige_ib", conditional_score="analytic", samples_per_input=1)
    assert analytic.samples_per_input == 1
    assert build_objective("vib").samples_per_input == 1
