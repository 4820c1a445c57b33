"""Pixel-space metrics (numpy only): the paper's Parzen-window log-likelihood and a
memorisation check. Images are flattened rows in [0, 1]: ``(N, 784)``. Their parameters
(the sigma grid, the quantile) have no defaults: the table in `evaluation.metrics` holds them.

Parzen follows Goodfellow et al. 2014 (Table 1, after Breuleux et al. 2011): an isotropic
Gaussian kernel of width sigma is put on each generated sample; sigma is picked from a log-spaced
grid by the mean log-likelihood of a held-out validation split; the test split's mean
log-likelihood is reported with its standard error. It is a poor density estimate in 784
dimensions and is reported because the paper did, next to the real-vs-real row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from evaluation.distances import chunks, pairwise_sq_dists, squared_norms

_CHUNK = 500  # query rows per distance block: (500, 10_000) float64 = 40 MB at most


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """Row-wise log(sum(exp(a))), overwriting `a` (it is a temporary: saves two copies)."""
    top = a.max(axis=1, keepdims=True)
    np.subtract(a, top, out=a)
    np.exp(a, out=a)
    result: np.ndarray = top[:, 0] + np.log(a.sum(axis=1))
    return result


def parzen_log_likelihoods(
    samples: np.ndarray, queries: np.ndarray, sigmas: Sequence[float]
) -> np.ndarray:
    """log p_sigma(x) for each query under the Parzen window on `samples`: ``(len(sigmas), Q)``.

    log p_sigma(x) = logsumexp_i(-|x - s_i|^2 / 2 sigma^2) - log N - (D/2) log(2 pi sigma^2).
    Distances come from one float32 matrix product per block of queries (error ~1e-4 in
    |x - s|^2 for [0, 1] pixels: < 0.01 nats at sigma = 0.1) and are reused for every sigma;
    the log-sum-exp runs in float64.
    """
    s = np.asarray(samples, dtype=np.float32)
    q = np.asarray(queries, dtype=np.float32)
    n, dim = s.shape
    s_sq = squared_norms(s)
    sig = np.asarray(sigmas, dtype=np.float64)
    out = np.empty((len(sig), len(q)))
    for rows in chunks(len(q), _CHUNK):
        d = pairwise_sq_dists(q[rows], s, s_sq)  # (chunk, N) float32
        for i, sigma in enumerate(sig):
            scaled = np.multiply(d, -0.5 / sigma**2, dtype=np.float64)  # `d` is reused
            out[i, rows] = _logsumexp_rows(scaled)
    out -= np.log(n) + 0.5 * dim * np.log(2.0 * np.pi * sig**2)[:, None]
    return out


@dataclass(frozen=True)
class ParzenResult:
    mean: float  # mean log-likelihood of the test queries, nats per image
    stderr: float  # standard error of that mean: std / sqrt(Q)
    sigma: float  # kernel width chosen on the validation split
    sigma_at_grid_edge: bool  # the optimum may lie outside the grid
    validation_mean: float  # best mean validation log-likelihood

    def as_dict(self) -> dict[str, float | bool]:
        return asdict(self)


def parzen_evaluate(
    samples: np.ndarray,
    validation: np.ndarray,
    test: np.ndarray,
    *,
    sigmas: Sequence[float],
) -> ParzenResult:
    """Choose sigma on `validation`, then report mean ± standard error on `test`."""
    valid_means = parzen_log_likelihoods(samples, validation, sigmas).mean(axis=1)
    best = int(np.argmax(valid_means))
    sigma = float(sigmas[best])
    ll = parzen_log_likelihoods(samples, test, [sigma])[0]
    return ParzenResult(
        mean=float(ll.mean()),
        stderr=float(ll.std(ddof=1) / np.sqrt(len(ll))) if len(ll) > 1 else 0.0,
        sigma=sigma,
        sigma_at_grid_edge=best in (0, len(sigmas) - 1),
        validation_mean=float(valid_means[best]),
    )


def memorisation(
    sample_nn: np.ndarray, test_nn: np.ndarray, *, quantile: float
) -> dict[str, float]:
    """Compare nearest-training-image distances of generated samples with those of real test
    images (`evaluation.distances.nearest_distances`). `share_closer` is the share of samples
    nearer to a training image than the `quantile` of real test images are; fresh samples
    from the data distribution score about `quantile`, a generator that copies training
    images scores near 1."""
    threshold = float(np.quantile(test_nn, quantile))
    return {
        "share_closer": float((sample_nn < threshold).mean()),
        "threshold": threshold,
        "quantile": quantile,
        "median_nn_distance": float(np.median(sample_nn)),
        "test_median_nn_distance": float(np.median(test_nn)),
    }
