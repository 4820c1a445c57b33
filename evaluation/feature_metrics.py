"""Sample-quality metrics in the evaluator network's feature and class-probability space
(numpy only).

Every function takes plain arrays — features ``(N, D)``, logits ``(N, K)``, integer labels —
so each can be checked on synthetic data with a known answer (tests/evaluation/
test_feature_metrics.py). Their parameters (k, subsets, splits, thresholds) have no
defaults: the one table in `evaluation.metrics` holds them, and the report echoes it.
docs/evaluation.md says what each number means and how to read it.
"""

from __future__ import annotations

import numpy as np

from evaluation.distances import chunks, knn_radii, pairwise_sq_dists, squared_norms

# ---------------------------------------------------------------- Fréchet distance and KID


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` in float64."""
    x = np.asarray(features, dtype=np.float64)
    if len(x) < 2:
        raise ValueError("need at least 2 samples for a covariance")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """‖μ₁-μ₂‖² + tr(Σ₁ + Σ₂ - 2(Σ₁Σ₂)^½) between two Gaussians.

    tr((Σ₁Σ₂)^½) is the sum of square roots of the eigenvalues of the symmetric PSD matrix
    Σ₁^½ Σ₂ Σ₁^½ (same spectrum as Σ₁Σ₂), so two `eigh` calls replace `scipy.linalg.sqrtm`
    and its complex round-off on near-singular covariances.
    """
    diff = mu1 - mu2
    w, v = np.linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    middle = root1 @ cov2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    trace_sqrt = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def frechet_distance_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def kernel_inception_distance(
    a: np.ndarray,
    b: np.ndarray,
    *,
    subsets: int,
    subset_size: int,
    seed: int = 0,
) -> tuple[float, float]:
    """Unbiased MMD² with the cubic polynomial kernel (x·y/D + 1)³, mean and std over subsets
    (Bińkowski et al. 2018). Unlike FD it is unbiased in the sample size."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("need at least 2 samples per set for KID")
    dim = a.shape[1]
    values = np.empty(subsets)
    for i in range(subsets):
        x = np.asarray(a[rng.choice(len(a), m, replace=False)], dtype=np.float64)
        y = np.asarray(b[rng.choice(len(b), m, replace=False)], dtype=np.float64)
        within = (x @ x.T / dim + 1) ** 3 + (y @ y.T / dim + 1) ** 3  # (m, m)
        across = (x @ y.T / dim + 1) ** 3
        t = (within.sum() - np.trace(within)) / (m - 1) - 2.0 * across.sum() / m
        values[i] = t / m
    return float(values.mean()), float(values.std())


# ---------------------------------------------------------------- class-probability metrics


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    result: np.ndarray = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return result


def inception_score(logits: np.ndarray, *, splits: int) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) ‖ p(y))) under the evaluator, mean and std over `splits` parts.

    1 = every sample gets the same class distribution; K = confident and evenly spread."""
    log_p = log_softmax(logits)  # (N, K)
    scores = []
    for part in np.array_split(np.arange(len(log_p)), splits):
        lp = log_p[part]
        # log of the mean probability via log-sum-exp: finite even if a class underflows
        top = lp.max(axis=0)
        log_marginal = top + np.log(np.exp(lp - top).sum(axis=0)) - np.log(len(lp))  # (K,)
        kl = (np.exp(lp) * (lp - log_marginal)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def class_histogram(
    predicted: np.ndarray,
    num_classes: int,
    *,
    min_share_of_uniform: float,
    collapse_kl: float,
) -> dict[str, object]:
    """Which classes the evaluator sees in the samples: the mode-collapse detector.

    A class is *covered* if its share is at least `min_share_of_uniform` x 1/K. `collapse` is
    flagged when a class is not covered or KL(histogram ‖ uniform) exceeds `collapse_kl` nats
    (0.1 ≈ losing one class of ten entirely: ln(10/9) = 0.105).
    """
    counts = np.bincount(np.asarray(predicted, dtype=np.int64), minlength=num_classes)
    shares = counts / max(int(counts.sum()), 1)
    nonzero = shares > 0
    kl = float((shares[nonzero] * np.log(shares[nonzero] * num_classes)).sum())
    covered = int((shares >= min_share_of_uniform / num_classes).sum())
    return {
        "counts": counts.tolist(),
        "classes_covered": covered,
        "largest_share": float(shares.max()),
        "largest_class": int(shares.argmax()),
        "kl_to_uniform": kl,
        "collapse": bool(covered < num_classes or kl > collapse_kl),
    }


def label_accuracy(
    requested: np.ndarray, predicted: np.ndarray, num_classes: int
) -> tuple[float, list[float | None]]:
    """Share of samples the evaluator puts in the requested class, overall and per class."""
    requested = np.asarray(requested)
    hit = requested == np.asarray(predicted)
    per_class: list[float | None] = [
        float(hit[requested == c].mean()) if (requested == c).any() else None
        for c in range(num_classes)
    ]
    return float(hit.mean()), per_class


# ---------------------------------------------------------------- k-NN manifold metrics


def precision_recall_density_coverage(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    k_pr: int,
    k_dc: int,
    real_radii: dict[int, np.ndarray] | None = None,
) -> dict[str, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019, k = `k_pr`) and density/coverage
    (Naeem et al. 2020, k = `k_dc`), each sample's neighbourhood a ball to its k-th neighbour.

    precision: share of fake samples inside some real ball (fidelity);
    recall:    share of real samples inside some fake ball (diversity);
    density:   mean number of real balls a fake sample falls in, / k (≈ 1 for a match);
    coverage:  share of real samples whose ball holds at least one fake sample.
    """
    if len(real) <= max(k_pr, k_dc) or len(fake) <= k_pr:
        raise ValueError("too few samples for the k-NN metrics")
    real = np.asarray(real, dtype=np.float32)
    fake = np.asarray(fake, dtype=np.float32)
    if real_radii is None or k_pr not in real_radii or k_dc not in real_radii:
        real_radii = knn_radii(real, (k_pr, k_dc))
    fake_radii = knn_radii(fake, (k_pr,))[k_pr]
    real_sq = squared_norms(real)
    r_pr, r_dc = real_radii[k_pr], real_radii[k_dc]
    in_real_ball = 0  # fake samples inside some real k_pr-ball
    density_hits = 0.0
    real_recalled = np.zeros(len(real), dtype=bool)
    real_covered = np.zeros(len(real), dtype=bool)
    for rows in chunks(len(fake)):
        d = np.sqrt(pairwise_sq_dists(fake[rows], real, real_sq))  # (chunk, N_real)
        in_real_ball += int((d <= r_pr[None, :]).any(axis=1).sum())
        inside_dc = d <= r_dc[None, :]
        density_hits += float(inside_dc.sum())
        real_recalled |= (d <= fake_radii[rows, None]).any(axis=0)
        real_covered |= inside_dc.any(axis=0)
    return {
        "precision": in_real_ball / len(fake),
        "recall": float(real_recalled.mean()),
        "density": density_hits / (k_dc * len(fake)),
        "coverage": float(real_covered.mean()),
    }


# ---------------------------------------------------------------- classifier two-sample test


def classifier_two_sample_test(
    real: np.ndarray, fake: np.ndarray, *, l2: float, iterations: int, seed: int = 0
) -> dict[str, float]:
    """Lopez-Paz & Oquab's C2ST: train a fresh classifier to tell real from fake on half of
    each set, report its accuracy on the other half (0.5 = indistinguishable, 1 = trivially
    separable). The classifier is L2-regularised logistic regression on standardised
    features, fitted exactly by Newton's method, so the result is deterministic."""
    rng = np.random.default_rng(seed)
    m = min(len(real), len(fake))
    if m < 4:
        raise ValueError("need at least 4 samples per set for the two-sample test")
    real = np.asarray(real, dtype=np.float64)[rng.choice(len(real), m, replace=False)]
    fake = np.asarray(fake, dtype=np.float64)[rng.choice(len(fake), m, replace=False)]
    half = m // 2
    x_train = np.concatenate([real[:half], fake[:half]])
    y_train = np.concatenate([np.ones(half), np.zeros(half)])
    x_test = np.concatenate([real[half:], fake[half:]])
    y_test = np.concatenate([np.ones(m - half), np.zeros(m - half)])
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6

    def design(x: np.ndarray) -> np.ndarray:
        return np.hstack([(x - mean) / std, np.ones((len(x), 1))])

    a, a_test = design(x_train), design(x_test)
    w = np.zeros(a.shape[1])
    penalty = np.full(a.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a @ w)))  # stable sigmoid
        gradient = a.T @ (p - y_train) / len(a) + penalty * w
        hessian = (a.T * (p * (1 - p))) @ a / len(a) + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    accuracy = float(((a_test @ w > 0) == (y_test > 0.5)).mean())
    return {
        "accuracy": accuracy,
        "stderr": float(np.sqrt(accuracy * (1 - accuracy) / len(y_test))),
        "n_test": len(y_test),
    }
