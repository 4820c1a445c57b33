"""The one Euclidean distance kernel of the metrics, and what is built on it (numpy only).

Distances come from one matrix product per block of rows, |a|² + |b|² - 2 a·b, so a
(10k × 10k) comparison never holds more than one block in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK = 2048  # rows of a distance matrix held at once: (2048, 10_000) float32 = 80 MB


def squared_norms(x: np.ndarray) -> np.ndarray:
    """|x_i|² of each row, ``(N,)``."""
    norms: np.ndarray = np.einsum("ij,ij->i", x, x)
    return norms


def pairwise_sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances ``(len(a), len(b))`` in the inputs' dtype; `b_sq` is
    `squared_norms(b)` when the caller reuses it across blocks."""
    if b_sq is None:
        b_sq = squared_norms(b)
    d: np.ndarray = squared_norms(a)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    np.maximum(d, 0.0, out=d)  # round-off can make a distance slightly negative
    return d


def chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    """Consecutive row blocks of at most `size` covering 0..n."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def knn_radii(x: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Distance from each row of `x` to its k-th nearest other row, for each k in `ks`."""
    x = np.asarray(x, dtype=np.float32)
    x_sq = squared_norms(x)
    radii = {k: np.empty(len(x), dtype=np.float32) for k in ks}
    for rows in chunks(len(x)):
        d = pairwise_sq_dists(x[rows], x, x_sq)
        # index 0 after partitioning is the point itself (distance 0), so index k is the
        # k-th neighbour
        part = np.partition(d, max(ks), axis=1)
        for k in ks:
            radii[k][rows] = np.sqrt(part[:, k])
    return radii


def nearest_distances(
    queries: np.ndarray, reference: np.ndarray, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row (float32).

    `exclude[i]` is a reference index query i may not match (itself, for leave-one-out)."""
    q = np.asarray(queries, dtype=np.float32)
    r = np.asarray(reference, dtype=np.float32)
    r_sq = squared_norms(r)
    out = np.empty(len(q), dtype=np.float32)
    for rows in chunks(len(q)):
        d = pairwise_sq_dists(q[rows], r, r_sq)  # (chunk, R)
        if exclude is not None:
            d[np.arange(len(d)), exclude[rows]] = np.inf
        out[rows] = np.sqrt(d.min(axis=1))
    return out
