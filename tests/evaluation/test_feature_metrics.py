"""The feature-space metrics on synthetic data whose answers are known in closed form, called
through the metric table (`evaluation.metrics.compute`) where the table sets parameters."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import feature_metrics as fm
from evaluation.metrics import compute


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# ---------------------------------------------------------------- Fréchet distance, KID


def test_frechet_distance_of_identical_sets_is_zero(rng: np.random.Generator) -> None:
    x = rng.normal(size=(2000, 16))
    assert fm.frechet_distance_features(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_closed_form_for_gaussians() -> None:
    # diagonal covariances: FD = |mu1-mu2|^2 + sum (s1 - s2)^2 in standard deviations
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, 2.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 1.0, 3.0]), np.array([2.0, 2.0, 1.0, 1.0])
    expected = 1 + 4 + (1 + 0 + 0 + 4)
    got = fm.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_is_stable_on_singular_covariances(rng: np.random.Generator) -> None:
    # rank-deficient features (dead ReLU units) must not give nan or a complex value
    x = np.maximum(rng.normal(size=(500, 8)), 0)
    x[:, 3] = 0.0
    y = x + 0.01
    assert fm.frechet_distance_features(x, y) == pytest.approx(8 * 0.01**2, abs=1e-7)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two(
    rng: np.random.Generator,
) -> None:
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same, same_std = fm.kernel_inception_distance(a, b, subsets=10, subset_size=200)
    shifted, _ = fm.kernel_inception_distance(a, b + 1.0, subsets=10, subset_size=200)
    assert abs(same) < 3 * same_std  # unbiased: zero within its spread
    assert shifted > 100 * same_std


# ---------------------------------------------------------------- class-probability metrics


def test_inception_score_is_one_for_identical_predictions_and_k_for_confident_spread() -> None:
    k = 10
    confident = np.full((1000, k), -50.0)
    confident[np.arange(1000), np.arange(1000) % k] = 50.0
    mean, _ = compute("inception_score", confident)
    assert mean == pytest.approx(k, rel=1e-6)
    same = np.tile(np.linspace(0, 1, k), (1000, 1))
    assert compute("inception_score", same)[0] == pytest.approx(1.0, abs=1e-9)


def test_inception_score_stays_finite_when_a_class_probability_underflows() -> None:
    logits = np.zeros((100, 3))
    logits[:, 0] = 2000.0  # p(class 1) = p(class 2) = exp(-2000) = 0 in float64
    mean, std = compute("inception_score", logits)
    assert mean == pytest.approx(1.0) and np.isfinite(std)


def test_class_histogram_flags_collapse_onto_one_class() -> None:
    result = compute("class_histogram", np.full(1000, 3), 10)
    assert result["collapse"] is True
    assert result["classes_covered"] == 1
    assert result["largest_share"] == 1.0
    assert result["largest_class"] == 3
    assert result["kl_to_uniform"] == pytest.approx(np.log(10))


def test_class_histogram_of_balanced_classes_is_uniform() -> None:
    result = compute("class_histogram", np.arange(1000) % 10, 10)
    assert result["collapse"] is False
    assert result["classes_covered"] == 10
    assert result["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_class_histogram_flags_one_missing_class() -> None:
    result = compute("class_histogram", np.arange(900) % 9, 10)
    assert result["classes_covered"] == 9
    assert result["collapse"] is True


def test_label_accuracy_overall_and_per_class() -> None:
    requested = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 0])
    overall, per_class = fm.label_accuracy(requested, predicted, 4)
    assert overall == pytest.approx(0.5)
    assert per_class == [0.5, 1.0, 0.0, None]


# ---------------------------------------------------------------- k-NN metrics


def test_prdc_of_a_set_against_itself_is_perfect(rng: np.random.Generator) -> None:
    x = rng.normal(size=(400, 5)).astype(np.float32)
    result = compute("prdc", x, x)
    assert result["precision"] == 1.0
    assert result["recall"] == 1.0
    assert result["coverage"] == 1.0
    assert result["density"] >= 1.0  # each point sits in its own ball and k neighbours'


def test_disjoint_clusters_have_zero_coverage_precision_and_recall(
    rng: np.random.Generator,
) -> None:
    real = rng.normal(size=(300, 4))
    fake = rng.normal(size=(300, 4)) + 100.0
    result = compute("prdc", real, fake)
    assert result == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_half_covered_modes_give_half_coverage(rng: np.random.Generator) -> None:
    # real: two far-apart clusters; fake: only the first one → coverage and recall ≈ 0.5
    centres = np.array([[0.0, 0.0], [100.0, 0.0]])
    real = np.concatenate([rng.normal(size=(500, 2)) + c for c in centres])
    fake = rng.normal(size=(1000, 2)) + centres[0]
    result = compute("prdc", real, fake)
    assert result["coverage"] == pytest.approx(0.5, abs=0.02)
    assert result["recall"] == pytest.approx(0.5, abs=0.02)
    assert result["precision"] > 0.95


# ---------------------------------------------------------------- two-sample test


def test_c2st_is_chance_for_one_distribution_and_perfect_for_two(
    rng: np.random.Generator,
) -> None:
    a, b = rng.normal(size=(2000, 6)), rng.normal(size=(2000, 6))
    assert compute("c2st", a, b)["accuracy"] == pytest.approx(0.5, abs=0.04)
    assert compute("c2st", a, b + 10.0)["accuracy"] == 1.0
