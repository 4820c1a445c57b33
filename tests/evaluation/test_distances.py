"""The one distance kernel against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.distances import knn_radii, pairwise_sq_dists


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_knn_radii_match_a_brute_force_computation(rng: np.random.Generator) -> None:
    x = rng.normal(size=(50, 3)).astype(np.float32)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    expected = np.sort(d, axis=1)[:, 3]
    np.testing.assert_allclose(knn_radii(x, (3,))[3], expected, rtol=1e-4, atol=1e-4)


def test_pairwise_sq_dists_match_a_brute_force_computation(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(20, 5)), rng.normal(size=(30, 5))
    expected = ((a[:, None] - b[None]) ** 2).sum(-1)
    np.testing.assert_allclose(pairwise_sq_dists(a, b), expected, atol=1e-9)
    assert (pairwise_sq_dists(a, a).diagonal() >= 0).all()  # never negative from round-off
