"""The minimax game's losses stay finite and correct at extreme logits."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import discriminator_loss, generator_loss

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

EXTREMES = torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4])


def test_discriminator_loss_matches_the_definition_at_moderate_logits() -> None:
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    expected = -(math.log(torch.sigmoid(real).item()) + math.log(1 - torch.sigmoid(fake).item()))
    assert discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_discriminator_loss_is_zero_for_a_perfect_and_finite_for_a_hopeless_d() -> None:
    assert discriminator_loss(torch.tensor([1e4]), torch.tensor([-1e4])).item() == 0.0
    hopeless = discriminator_loss(torch.tensor([-1e4]), torch.tensor([1e4])).item()
    assert hopeless == pytest.approx(2e4)


@pytest.mark.parametrize("kind", ["minimax", "non-saturating", "hinge"])
def test_generator_losses_and_gradients_are_finite_at_extremes(kind: str) -> None:
    logits = EXTREMES.clone().requires_grad_(True)
    loss = generator_loss(logits, kind)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_minimax_saturates_where_non_saturating_does_not() -> None:
    # When D confidently rejects fakes (very negative logit) the minimax gradient vanishes:
    # the paper's reason to train G to maximize log D(G(z)) instead.
    gradients = {}
    for kind in ("minimax", "non-saturating"):
        logit = torch.tensor([-10.0], requires_grad=True)
        generator_loss(logit, kind).backward()
        assert logit.grad is not None
        gradients[kind] = abs(logit.grad.item())
    assert gradients["minimax"] < 1e-4 < 0.9 < gradients["non-saturating"]


def test_minimax_value_is_log_one_minus_d() -> None:
    logit = torch.tensor([0.3])
    expected = math.log(1 - torch.sigmoid(logit).item())
    assert generator_loss(logit, "minimax").item() == pytest.approx(expected, rel=1e-6)


def test_unknown_loss_is_refused() -> None:
    with pytest.raises(ValueError):
        generator_loss(torch.zeros(1), "wasserstein")


def test_hinge_discriminator_loss_counts_only_logits_inside_the_margin() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # real: max(0, 1 - 2) + max(0, 1 - 0.5) = 0.5 → mean 0.25; fake: 0 + max(0, 1 + 0) → 0.5
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(0.75)
    assert discriminator_loss(torch.tensor([1.0]), torch.tensor([-1.0]), "hinge").item() == 0.0


def test_hinge_generator_loss_is_the_negative_mean_logit() -> None:
    assert generator_loss(torch.tensor([1.0, -3.0]), "hinge").item() == pytest.approx(1.0)
