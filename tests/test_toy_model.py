"""The paper's toy model (``python -m benchmarks.evidence.toy_model``): exact δ identity, plain GD, inits, CLI smoke
run."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.evidence import toy_model as toy
from lit_loraplus.core.feature_terms import feature_terms


def _after_steps(init: toy.Init, steps: int = 3, lr_a: float = 0.05, lr_b: float = 0.5):
    """A problem and (A, B) after ``steps`` GD steps, so that neither matrix is 0 any more."""
    problem = toy.make_problem(width=48, samples=64)
    a, b = toy.init_adapters(problem.width, 4, init)
    for _ in range(steps):
        a, b, _ = toy.gd_step(problem, a, b, lr_a, lr_b)
    return problem, a, b


@pytest.mark.parametrize("init", toy.INITS)
def test_delta_terms_sum_to_the_lora_change_and_give_delta_f(init) -> None:
    """After a real GD step (float64), δ¹ + δ² + δ³ = Δ(B·A·z) to rounding, each term is non-zero, and the
    output change Δf is W_out·ReLU applied to the frozen part plus that change."""
    problem, a0, b0 = _after_steps(init)
    a1, b1, _ = toy.gd_step(problem, a0, b0, 0.05, 0.5)
    terms = toy.lora_terms(problem.z, a0, b0, a1, b1)
    assert all(terms[k].dtype == torch.float64 and terms[k].abs().max() > 1e-8 for k in toy.TERMS)
    z_b0, z_b1 = toy.lora_output(problem, a0, b0), toy.lora_output(problem, a1, b1)
    scale = float(terms["dZ"].abs().max())
    torch.testing.assert_close(terms["dZ"], z_b1 - z_b0, rtol=0, atol=1e-13 * scale)
    torch.testing.assert_close(
        terms["delta1"] + terms["delta2"] + terms["delta3"], z_b1 - z_b0, rtol=0, atol=1e-13 * scale
    )
    total = terms["delta1"] + terms["delta2"] + terms["delta3"]
    delta_f = (torch.relu(problem.base + z_b0 + total) - torch.relu(problem.base + z_b0)) @ problem.w_out
    actual = toy.forward(problem, a1, b1) - toy.forward(problem, a0, b0)
    assert actual.abs().max() > 1e-6
    torch.testing.assert_close(delta_f, actual, rtol=0, atol=1e-13)


def test_terms_agree_with_the_callbacks_float32_terms() -> None:
    """The toy's float64 δ terms equal the FeatureLearningMonitor's (float32, scaling 1) to float32 precision."""
    problem, a0, b0 = _after_steps("standard")
    a1, b1, _ = toy.gd_step(problem, a0, b0, 0.05, 0.5)
    ours = toy.lora_terms(problem.z, a0, b0, a1, b1)
    theirs = feature_terms(problem.z, a0, b0, a1, b1, scaling=1.0)
    for key in toy.TERMS:
        torch.testing.assert_close(theirs[key].double(), ours[key], rtol=1e-4, atol=1e-6 * float(ours[key].abs().max()))


def test_gd_step_is_plain_gradient_descent_on_a_and_b() -> None:
    """One step moves A and B by exactly −η times the hand-derived MSE gradients, with separate η_A and η_B."""
    problem, a, b = _after_steps("loraplus", steps=2)
    lr_a, lr_b = 0.03, 0.7
    a1, b1, loss = toy.gd_step(problem, a, b, lr_a, lr_b)
    pre = problem.base + toy.lora_output(problem, a, b)  # (N, n)
    error = toy.forward(problem, a, b) - problem.y  # (N,)
    g = (2 / len(error)) * error[:, None] * problem.w_out[None, :] * (pre > 0)  # dL/dZ_B, (N, n)
    grad_b = g.T @ (problem.z @ a.T)  # (n, r)
    grad_a = b.T @ g.T @ problem.z  # (r, n)
    torch.testing.assert_close(a1, a - lr_a * grad_a, rtol=0, atol=1e-14)
    torch.testing.assert_close(b1, b - lr_b * grad_b, rtol=0, atol=1e-14)
    assert float(loss) == pytest.approx(float(error.pow(2).mean()), rel=1e-12)


@pytest.mark.parametrize("init", toy.INITS)
def test_literal_ba_middle_layer_never_trains(init) -> None:
    """With W* = 0 (the paper's formula read literally) B·A = 0 at step 0 under either init, every ReLU input is
    0, and GD leaves A and B exactly where they started: the reason the toy model keeps a frozen W*."""
    problem = toy.make_problem(width=32, samples=32, w_star_scale=0.0)
    a0, b0 = toy.init_adapters(32, 4, init)
    a, b = a0, b0
    for _ in range(3):
        a, b, _ = toy.gd_step(problem, a, b, 1.0, 1.0)
    assert torch.equal(a, a0) and torch.equal(b, b0)
    trained = toy.train(toy.make_problem(width=32, samples=32), 0.1, 1.0, steps=3, init=init)
    assert trained.losses[-1] < trained.losses[0]  # with W*, the same steps learn


def test_initialisations() -> None:
    """standard: A ~ N(0, 1/n), B = 0; loraplus (Init[2]): B ~ N(0, 1/r), A = 0."""
    a, b = toy.init_adapters(1024, 4, "standard")
    assert torch.count_nonzero(b) == 0 and a.var().item() == pytest.approx(1 / 1024, rel=0.1)
    a, b = toy.init_adapters(1024, 4, "loraplus")
    assert torch.count_nonzero(a) == 0 and b.var().item() == pytest.approx(1 / 4, rel=0.1)


def test_gd_learns_and_a_too_large_rate_diverges() -> None:
    """Moderate rates lower the loss; a huge η_B is reported as divergence (final loss inf), not as a number."""
    problem = toy.make_problem(width=64, samples=128)
    good = toy.train(problem, 0.1, 1.0, steps=30)
    assert not good.diverged and good.final_loss < 0.8 * good.losses[0] and len(good.terms) == 30
    bad = toy.train(problem, 0.1, 1e4, steps=30)
    assert bad.diverged and bad.final_loss == float("inf")


def test_grid_optimum_and_slope() -> None:
    """The optimum is the smallest cell, the diagonal is found on shared rate values, slopes are exact on a power
    law."""
    lrs = [0.1, 1.0, 10.0]
    grid = [[5.0, 4.0, 0.5], [3.0, 2.0, 1.0], [float("inf"), 9.0, 8.0]]
    best = toy.grid_optimum(lrs, lrs, grid)
    assert (best["lr_a"], best["lr_b"], best["ratio"], best["loss"]) == (0.1, 10.0, 100.0, 0.5)
    assert (best["equal_lr"], best["equal_loss"]) == (1.0, 2.0)
    assert toy.loglog_slope([64, 128, 256], [3 * n**2 for n in (64, 128, 256)]) == pytest.approx(2.0)


def test_width_scaling_of_the_balance() -> None:
    """The measured claim (README): with equal rates the balance δ²/δ¹ falls like 1/n as width grows; with
    η_A ∝ 1/n at fixed η_B (the paper's λ = Θ(n)) it stays level. Small sweep: n = 64, 256, 1024, 3 seeds."""
    sweep = toy.width_sweep([64, 256, 1024], lr=0.1, ratio=16.0, steps=2, samples=128, seeds=3)
    assert sweep["equal"]["slopes"]["delta2_over_delta1"] < -0.6
    assert sweep["equal"]["slopes"]["delta1"] > 0 > sweep["equal"]["slopes"]["delta2"]
    assert abs(sweep["scaled"]["slopes"]["delta2_over_delta1"]) < 0.3
    assert sweep["scaled"]["lr_a"] == [0.1, 0.025, 0.00625] and sweep["scaled"]["lr_b"] == [1.6] * 3


def test_bad_settings_are_refused() -> None:
    """Bad sizes, inits and sweep settings raise errors naming the setting and the value."""
    with pytest.raises(ValueError, match=r"`width=0` must be a positive integer.*`w_star_scale=-1.0`"):
        toy.make_problem(width=0, w_star_scale=-1.0)
    with pytest.raises(ValueError, match=r"`init='kaiming'` must be one of"):
        toy.init_adapters(8, 2, "kaiming")
    with pytest.raises(ValueError, match=r"`setting='adam'`"):
        toy.width_rates("adam", 64, 0.1, 16.0, 64)
    with pytest.raises(ValueError, match=r"`measure_step=3` must be between 1 and `steps=2`"):
        toy.width_sweep([64], lr=0.1, ratio=16.0, steps=2, samples=8, seeds=1, measure_step=3)


@pytest.mark.subprocess
def test_smoke_run_writes_json_and_figures(tmp_path, run_python) -> None:
    """``--smoke`` runs the CLI end to end: JSON with both heatmaps, their optima, and finite width slopes; PNGs."""
    done = run_python("-m", "benchmarks.evidence.toy_model", "--smoke", "--out", str(tmp_path))
    result = json.loads((tmp_path / "toy_model.json").read_text())
    for init in toy.INITS:
        grid = result["heatmap"][init]["loss"]
        assert len(grid) == len(result["heatmap"]["lrs"]) == 5 and all(len(row) == 5 for row in grid)
        optimum = result["heatmap"][init]["optimum"]
        finite = [v for row in grid for v in row if v is not None]  # null: diverged
        assert 0 < len(finite) < 25 and optimum["loss"] == min(finite) <= optimum["equal_loss"]
        assert (tmp_path / f"heatmap_{init}.png").stat().st_size > 1000
    settings = result["width_sweep"]["settings"]
    assert set(settings) == set(toy.SETTINGS)
    assert all(abs(row["slopes"]["delta2"]) < 10 for row in settings.values())
    assert (tmp_path / "width.png").stat().st_size > 1000
    assert "slopes vs n" in done.stdout
