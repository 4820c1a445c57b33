"""The metric functions on synthetic data whose answers are known in closed form."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from training import pixel_metrics as pm
from training import quality_metrics as qm
from training.untrained import reinitialise


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# ---------------------------------------------------------------- Fréchet distance, KID


def test_frechet_distance_of_identical_sets_is_zero(rng: np.random.Generator) -> None:
    x = rng.normal(size=(2000, 16))
    assert qm.frechet_distance_features(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_closed_form_for_gaussians() -> None:
    # diagonal covariances: FD = |mu1-mu2|^2 + sum (s1 - s2)^2 in standard deviations
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, 2.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 1.0, 3.0]), np.array([2.0, 2.0, 1.0, 1.0])
    expected = 1 + 4 + (1 + 0 + 0 + 4)
    got = qm.frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_is_stable_on_singular_covariances(rng: np.random.Generator) -> None:
    # rank-deficient features (dead ReLU units) must not give nan or a complex value
    x = np.maximum(rng.normal(size=(500, 8)), 0)
    x[:, 3] = 0.0
    y = x + 0.01
    assert qm.frechet_distance_features(x, y) == pytest.approx(8 * 0.01**2, abs=1e-7)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two(
    rng: np.random.Generator,
) -> None:
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same, same_std = qm.kernel_inception_distance(a, b, subsets=10, subset_size=200)
    shifted, _ = qm.kernel_inception_distance(a, b + 1.0, subsets=10, subset_size=200)
    assert abs(same) < 3 * same_std  # unbiased: zero within its spread
    assert shifted > 100 * same_std


# ---------------------------------------------------------------- class-probability metrics


def test_inception_score_is_one_for_identical_predictions_and_k_for_confident_spread() -> None:
    k = 10
    confident = np.full((1000, k), -50.0)
    confident[np.arange(1000), np.arange(1000) % k] = 50.0
    mean, _ = qm.inception_score(confident)
    assert mean == pytest.approx(k, rel=1e-6)
    same = np.tile(np.linspace(0, 1, k), (1000, 1))
    assert qm.inception_score(same)[0] == pytest.approx(1.0, abs=1e-9)


def test_inception_score_stays_finite_when_a_class_probability_underflows() -> None:
    logits = np.zeros((100, 3))
    logits[:, 0] = 2000.0  # p(class 1) = p(class 2) = exp(-2000) = 0 in float64
    mean, std = qm.inception_score(logits)
    assert mean == pytest.approx(1.0) and np.isfinite(std)


def test_class_histogram_flags_collapse_onto_one_class() -> None:
    result = qm.class_histogram(np.full(1000, 3), 10)
    assert result["collapse"] is True
    assert result["classes_covered"] == 1
    assert result["largest_share"] == 1.0
    assert result["largest_class"] == 3
    assert result["kl_to_uniform"] == pytest.approx(np.log(10))


def test_class_histogram_of_balanced_classes_is_uniform() -> None:
    result = qm.class_histogram(np.arange(1000) % 10, 10)
    assert result["collapse"] is False
    assert result["classes_covered"] == 10
    assert result["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_class_histogram_flags_one_missing_class() -> None:
    result = qm.class_histogram(np.arange(900) % 9, 10)
    assert result["classes_covered"] == 9
    assert result["collapse"] is True


def test_label_accuracy_overall_and_per_class() -> None:
    requested = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 0, 0])
    overall, per_class = qm.label_accuracy(requested, predicted, 4)
    assert overall == pytest.approx(0.5)
    assert per_class == [0.5, 1.0, 0.0, None]


# ---------------------------------------------------------------- k-NN metrics


def test_prdc_of_a_set_against_itself_is_perfect(rng: np.random.Generator) -> None:
    x = rng.normal(size=(400, 5)).astype(np.float32)
    result = qm.precision_recall_density_coverage(x, x)
    assert result["precision"] == 1.0
    assert result["recall"] == 1.0
    assert result["coverage"] == 1.0
    assert result["density"] >= 1.0  # each point sits in its own ball and k neighbours'


def test_disjoint_clusters_have_zero_coverage_precision_and_recall(
    rng: np.random.Generator,
) -> None:
    real = rng.normal(size=(300, 4))
    fake = rng.normal(size=(300, 4)) + 100.0
    result = qm.precision_recall_density_coverage(real, fake)
    assert result == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_half_covered_modes_give_half_coverage(rng: np.random.Generator) -> None:
    # real: two far-apart clusters; fake: only the first one → coverage and recall ≈ 0.5
    centres = np.array([[0.0, 0.0], [100.0, 0.0]])
    real = np.concatenate([rng.normal(size=(500, 2)) + c for c in centres])
    fake = rng.normal(size=(1000, 2)) + centres[0]
    result = qm.precision_recall_density_coverage(real, fake)
    assert result["coverage"] == pytest.approx(0.5, abs=0.02)
    assert result["recall"] == pytest.approx(0.5, abs=0.02)
    assert result["precision"] > 0.95


def test_knn_radii_match_a_brute_force_computation(rng: np.random.Generator) -> None:
    x = rng.normal(size=(50, 3)).astype(np.float32)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    expected = np.sort(d, axis=1)[:, 3]
    np.testing.assert_allclose(qm.knn_radii(x, (3,))[3], expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- two-sample test


def test_c2st_is_chance_for_one_distribution_and_perfect_for_two(
    rng: np.random.Generator,
) -> None:
    a, b = rng.normal(size=(2000, 6)), rng.normal(size=(2000, 6))
    assert qm.classifier_two_sample_test(a, b)["accuracy"] == pytest.approx(0.5, abs=0.04)
    assert qm.classifier_two_sample_test(a, b + 10.0)["accuracy"] == 1.0


# ---------------------------------------------------------------- Parzen window


def test_parzen_with_one_centre_is_the_gaussian_density() -> None:
    centre = np.array([[0.2, 0.4, 0.6]])
    query = np.array([[0.3, 0.1, 0.6], [0.2, 0.4, 0.6]])
    sigma = 0.25
    sq = ((query - centre) ** 2).sum(axis=1)
    expected = -sq / (2 * sigma**2) - 1.5 * np.log(2 * np.pi * sigma**2)
    got = pm.parzen_log_likelihoods(centre, query, [sigma])[0]
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
    got = pm.parzen_log_likelihoods(samples, test, [sigma])[0].mean()
    assert got == pytest.approx(expected, abs=0.1)


def test_parzen_evaluate_picks_the_best_sigma_and_reports_a_standard_error(
    rng: np.random.Generator,
) -> None:
    samples = rng.normal(0, 0.1, size=(2000, 3))
    valid, test = rng.normal(0, 0.1, size=(500, 3)), rng.normal(0, 0.1, size=(500, 3))
    sigmas = list(np.logspace(-3, 1, 17))
    result = pm.parzen_evaluate(samples, valid, test, sigmas)
    assert 0.01 < result.sigma < 0.1  # neither a spike per sample nor one wide blob
    assert not result.sigma_at_grid_edge
    ll = pm.parzen_log_likelihoods(samples, test, [result.sigma])[0]
    assert result.mean == pytest.approx(ll.mean())
    assert result.stderr == pytest.approx(ll.std(ddof=1) / np.sqrt(len(ll)))


def test_memorisation_flags_copies_of_training_images(rng: np.random.Generator) -> None:
    train = rng.random((500, 20)).astype(np.float32)
    test = rng.random((300, 20)).astype(np.float32)
    copies = train[:300] + 0.001
    fresh = rng.random((300, 20)).astype(np.float32)
    test_nn = pm.nearest_distances(test, train)
    assert pm.memorisation(pm.nearest_distances(copies, train), test_nn)["share_closer"] == 1.0
    fresh_share = pm.memorisation(pm.nearest_distances(fresh, train), test_nn)["share_closer"]
    assert fresh_share < 0.15


def test_nearest_distances_can_leave_each_query_itself_out(rng: np.random.Generator) -> None:
    train = rng.random((200, 10)).astype(np.float32)
    d = np.sqrt(((train[:, None] - train[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    got = pm.nearest_distances(train[:50], train, exclude=np.arange(50))
    np.testing.assert_allclose(got, d[:50].min(axis=1), rtol=1e-4)
    assert (pm.nearest_distances(train[:50], train) < 1e-3).all()  # without: matches itself


# ---------------------------------------------------------------- untrained twin


def _tiny_dcgan_like() -> onnx.ModelProto:
    """z → Gemm → BatchNorm → Reshape → ConvTranspose(+bias) → Tanh, plus a label table."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.normal(size=(10, 4)).astype(np.float32), "embed"),
        numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=16).astype(np.float32), "bn_s"),
        numpy_helper.from_array(rng.normal(size=16).astype(np.float32), "bn_b"),
        numpy_helper.from_array(rng.normal(size=16).astype(np.float32), "bn_m"),
        numpy_helper.from_array(rng.random(16).astype(np.float32) + 0.5, "bn_v"),
        numpy_helper.from_array(np.array([-1, 16, 1, 1], dtype=np.int64), "shape"),
        numpy_helper.from_array(rng.normal(size=(16, 1, 2, 2)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(size=1).astype(np.float32), "b2"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
    ]
    nodes = [
        helper.make_node("Gather", ["embed", "label"], ["e"]),
        helper.make_node("Concat", ["z", "e"], ["ze"], axis=1),
        helper.make_node("Gemm", ["ze", "w1"], ["h"]),
        helper.make_node("BatchNormalization", ["h", "bn_s", "bn_b", "bn_m", "bn_v"], ["hn"]),
        helper.make_node("Reshape", ["hn", "shape"], ["h4"]),
        helper.make_node("ConvTranspose", ["h4", "w2", "b2"], ["c"], strides=[2, 2]),
        helper.make_node("Mul", ["c", "half"], ["c2"]),
        helper.make_node("Tanh", ["c2"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 2, 2])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_reinitialise_dcgan_redraws_weights_by_role_and_keeps_the_graph() -> None:
    model = _tiny_dcgan_like()
    fresh, summary = reinitialise(model, "dcgan", seed=0)
    new, old = _arrays(fresh), _arrays(model)
    assert summary["reinitialised"] == {
        "bias": 1, "bn_mean": 1, "bn_scale": 1, "bn_shift": 1, "bn_var": 1,
        "embedding": 1, "weight": 2,
    }
    assert abs(new["w1"].std() - 0.02) < 0.01 and abs(new["embed"].std() - 0.02) < 0.01
    assert abs(new["bn_s"].mean() - 1.0) < 0.02
    np.testing.assert_array_equal(new["bn_m"], 0.0)
    np.testing.assert_array_equal(new["bn_v"], 1.0)
    np.testing.assert_array_equal(new["b2"], 0.0)
    np.testing.assert_array_equal(new["shape"], old["shape"])  # shapes and constants kept
    np.testing.assert_array_equal(new["half"], old["half"])
    assert fresh.graph.node == model.graph.node
    onnx.checker.check_model(fresh)


def test_reinitialise_mlp_uses_pytorch_default_bounds() -> None:
    fresh, _ = reinitialise(_tiny_dcgan_like(), "mlp", seed=0)
    new = _arrays(fresh)
    assert np.abs(new["w1"]).max() <= 1 / np.sqrt(8)  # Gemm B (in=8, out=16)
    assert np.abs(new["w2"]).max() <= 1 / np.sqrt(1 * 2 * 2)  # ConvT fan_in = dim1 · k · k
    assert abs(new["embed"].std() - 1.0) < 0.4  # nn.Embedding: N(0, 1)
    np.testing.assert_array_equal(new["bn_s"], 1.0)
