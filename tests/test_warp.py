"""rigid_warp: convention (sign of theta and tx), agreement with kornia and with the analytic
bar targets of deepmi.data.bar, and gradients w.r.t. tx and theta."""

import math

import numpy as np
import pytest
import torch
from kornia.geometry.transform import get_rotation_matrix2d, warp_affine

from deepmi.data.bar import render_bars
from deepmi.models.warp import rigid_matrix, rigid_warp


def test_identity_and_integer_shift():
    images = torch.rand(2, 3, 10, 14)
    zero = torch.zeros(2)
    torch.testing.assert_close(rigid_warp(images, zero, zero), images, atol=1e-5, rtol=0)
    shifted = rigid_warp(images, torch.tensor([3.0, -2.0]), zero)
    torch.testing.assert_close(shifted[0, ..., 3:], images[0, ..., :-3], atol=1e-5, rtol=0)
    torch.testing.assert_close(shifted[1, ..., :-2], images[1, ..., 2:], atol=1e-5, rtol=0)
    assert shifted[0, ..., :3].abs().max() == 0  # zeros padding


def test_positive_theta_is_counter_clockwise_as_displayed():
    image = torch.zeros(1, 1, 21, 21)
    image[0, 0, 10, 15] = 1.0  # a dot 5 px right of the centre (10, 10)
    out = rigid_warp(image, torch.zeros(1), torch.tensor([90.0]))[0, 0]
    row, col = divmod(int(out.argmax()), 21)
    assert (row, col) == (5, 10)  # now 5 px ABOVE the centre: counter-clockwise on screen
    assert out.max() > 0.99


def test_matches_kornia_warp_affine():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 24, 40)
    tx = torch.tensor([0.0, 5.3, -7.9, 2.2])
    theta = torch.tensor([0.0, 17.0, -33.0, 40.0])
    centre = torch.tensor([[(40 - 1) / 2, (24 - 1) / 2]]).expand(4, 2)
    matrix = get_rotation_matrix2d(centre, theta, torch.ones(4, 2))
    matrix[:, 0, 2] += tx
    torch.testing.assert_close(rigid_matrix(tx, theta, 24, 40), matrix, atol=1e-5, rtol=0)
    reference = warp_affine(images, matrix, (24, 40), align_corners=True)
    torch.testing.assert_close(rigid_warp(images, tx, theta), reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "tx, theta",
    [
        (0.0, 0.0),
        (100.0, 40.0),
        (-100.0, -40.0),
        (-100.0, 40.0),
        (100.0, -40.0),
        (37.3, 12.7),
        (-61.9, -27.4),
    ],
)
def test_reproduces_analytic_bar_target(tx, theta):
    """The pin between data and model: warping the source bar gives the rendered target."""
    source = render_bars(np.zeros(1), np.zeros(1), 192, 640, 50, 125)
    target = render_bars(np.array([tx]), np.array([theta]), 192, 640, 50, 125)[0].astype(bool)
    warped = rigid_warp(torch.from_numpy(source).float()[None], torch.tensor([tx]), torch.tensor([theta]))
    predicted = warped[0, 0].numpy() > 0.5
    iou = (predicted & target).sum() / (predicted | target).sum()
    assert iou > 0.98, iou


def test_wrong_parameters_do_not_reproduce_target():
    source = torch.from_numpy(render_bars(np.zeros(1), np.zeros(1), 192, 640, 50, 125)).float()[None]
    target = render_bars(np.array([30.0]), np.array([20.0]), 192, 640, 50, 125)[0].astype(bool)
    for tx, theta in [(30.0, -20.0), (-30.0, 20.0), (30.0, 0.0)]:
        predicted = rigid_warp(source, torch.tensor([tx]), torch.tensor([theta]))[0, 0].numpy() > 0.5
        assert (predicted & target).sum() / (predicted | target).sum() < 0.8


def test_gradcheck_tx_theta_float64():
    torch.manual_seed(1)
    images = torch.nn.functional.avg_pool2d(torch.rand(2, 1, 8, 10, dtype=torch.float64), 3, 1, 1)
    tx = torch.tensor([0.37, -1.21], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([7.3, -11.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: rigid_warp(images, a, b), (tx, theta), eps=1e-6, atol=1e-6)


def test_bar_loss_gradient_is_finite_nonzero_and_matches_finite_differences():
    source = torch.from_numpy(render_bars(np.zeros(1), np.zeros(1), 96, 320, 25, 62)).double()[None]
    target = torch.from_numpy(render_bars(np.array([20.0]), np.array([15.0]), 96, 320, 25, 62)).double()[None]

    def loss(tx, theta):
        return ((rigid_warp(source, tx, theta) - target) ** 2).mean()

    tx = torch.tensor([12.31], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([7.77], dtype=torch.float64, requires_grad=True)
    grad_tx, grad_theta = torch.autograd.grad(loss(tx, theta), (tx, theta))
    assert torch.isfinite(grad_tx).all() and torch.isfinite(grad_theta).all()
    # The loss falls when moving towards (20, 15): both gradients negative.
    assert grad_tx.item() < 0 and grad_theta.item() < 0
    h = 1e-4
    with torch.no_grad():
        fd_tx = (loss(tx + h, theta) - loss(tx - h, theta)) / (2 * h)
        fd_theta = (loss(tx, theta + h) - loss(tx, theta - h)) / (2 * h)
    assert math.isclose(grad_tx.item(), fd_tx.item(), rel_tol=0.02)
    assert math.isclose(grad_theta.item(), fd_theta.item(), rel_tol=0.02)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="B, C, H, W"):
        rigid_warp(torch.rand(5, 5), torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="one value per image"):
        rigid_warp(torch.rand(2, 1, 5, 5), torch.zeros(3), torch.zeros(2))
    # A (B, 1) column is accepted.
    assert rigid_warp(torch.rand(2, 1, 5, 5), torch.zeros(2, 1), torch.zeros(2, 1)).shape == (2, 1, 5, 5)
