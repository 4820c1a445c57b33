"""Parzen window and memorisation on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import pixel_metrics as pxm
from evaluation.distances import nearest_distances
from evaluation.metrics import compute


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# ---------------------------------------------------------------- Parzen window


def test_parzen_with_one_centre_is_the_gaussian_density() -> None:
    centre = np.array([[0.2, 0.4, 0.6]])
    query = np.array([[0.3, 0.1, 0.6], [0.2, 0.4, 0.6]])
    sigma = 0.25
    sq = ((query - centre) ** 2).sum(axis=1)
    expected = -sq / (2 * sigma**2) - 1.5 * np.log(2 * np.pi * sigma**2)
    got = pxm.parzen_log_likelihoods(centre, query, [sigma])[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)  # float32 distances


def test_parzen_of_gaussian_samples_approaches_the_smoothed_gaussian(
    rng: np.random.Generator,
) -> None:
    # samples from N(0, s^2 I) smoothed by a kernel of width sigma are N(0, (s^2 + sigma^2) I),
    # so the expected log-likelihood of test points from N(0, s^2 I) has a closed form
    d, s, sigma = 2, 1.0, 0.3
    samples = rng.normal(0, s, size=(5000, d))
    test = rng.normal(0, s, size=(1000, d))
    v = s**2 + sigma**2
    expected = -0.5 * d * np.log(2 * np.pi * v) - 0.5 * d * s**2 / v
    got = pxm.parzen_log_likelihoods(samples, test, [sigma])[0].mean()
    assert got == pytest.approx(expected, abs=0.1)


def test_parzen_evaluate_picks_the_best_sigma_and_reports_a_standard_error(
    rng: np.random.Generator,
) -> None:
    samples = rng.normal(0, 0.1, size=(2000, 3))
    valid, test = rng.normal(0, 0.1, size=(500, 3)), rng.normal(0, 0.1, size=(500, 3))
    sigmas = list(np.logspace(-3, 1, 17))
    result = pxm.parzen_evaluate(samples, valid, test, sigmas=sigmas)
    assert 0.01 < result.sigma < 0.1  # neither a spike per sample nor one wide blob
    assert not result.sigma_at_grid_edge
    ll = pxm.parzen_log_likelihoods(samples, test, [result.sigma])[0]
    assert result.mean == pytest.approx(ll.mean())
    assert result.stderr == pytest.approx(ll.std(ddof=1) / np.sqrt(len(ll)))


def test_memorisation_flags_copies_of_training_images(rng: np.random.Generator) -> None:
    train = rng.random((500, 20)).astype(np.float32)
    test = rng.random((300, 20)).astype(np.float32)
    copies = train[:300] + 0.001
    fresh = rng.random((300, 20)).astype(np.float32)
    test_nn = nearest_distances(test, train)
    assert compute("memorisation", nearest_distances(copies, train), test_nn)["share_closer"] == 1.0
    fresh_share = compute("memorisation", nearest_distances(fresh, train), test_nn)["share_closer"]
    assert fresh_share < 0.15


def test_nearest_distances_can_leave_each_query_itself_out(rng: np.random.Generator) -> None:
    train = rng.random((200, 10)).astype(np.float32)
    d = np.sqrt(((train[:, None] - train[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    got = nearest_distances(train[:50], train, exclude=np.arange(50))
    np.testing.assert_allclose(got, d[:50].min(axis=1), rtol=1e-4)
    assert (nearest_distances(train[:50], train) < 1e-3).all()  # without: matches itself
