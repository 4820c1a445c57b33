"""The one table of evaluation metrics: name → function → parameters.

Every parameter of the evaluation (k of the k-NN metrics, KID subsets, IS splits, the
mode-collapse thresholds, the two-sample test's regulariser, the Parzen sigma grid, the
memorisation quantile) is written here once. Scoring calls the functions through `compute`,
the report's `settings` block echoes the table (`report_settings`), and the printed table's
labels read it (`param`), so the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from evaluation import feature_metrics as fm
from evaluation import pixel_metrics as pxm

# The paper's released code searched logspace(-1, 0, 10); this grid spans that range in a
# slightly finer step (0.1 vs 0.11 decade) and one decade lower, so a very sharp sample set
# cannot pin sigma to the edge of the grid.
# (On Fashion-MNIST the real row picks 0.158 and an untrained DCGAN 0.398: inside both.)
PARZEN_SIGMAS = tuple(float(s) for s in np.logspace(-2.0, 0.0, 21))


@dataclass(frozen=True)
class Metric:
    function: Callable[..., Any]
    params: Mapping[str, Any]  # keyword arguments the function is always called with


METRICS: Mapping[str, Metric] = MappingProxyType(
    {
        "fcd": Metric(fm.frechet_distance_features, {}),
        "kid": Metric(fm.kernel_inception_distance, {"subsets": 100, "subset_size": 1000}),
        "inception_score": Metric(fm.inception_score, {"splits": 10}),
        "prdc": Metric(fm.precision_recall_density_coverage, {"k_pr": 3, "k_dc": 5}),
        # a class is covered at ≥ 0.1 × 1/K; collapse above 0.1 nats ≈ losing one class of
        # ten entirely (ln(10/9) = 0.105)
        "class_histogram": Metric(
            fm.class_histogram, {"min_share_of_uniform": 0.1, "collapse_kl": 0.1}
        ),
        "label_accuracy": Metric(fm.label_accuracy, {}),
        "c2st": Metric(fm.classifier_two_sample_test, {"l2": 1e-3, "iterations": 30}),
        "parzen": Metric(pxm.parzen_evaluate, {"sigmas": PARZEN_SIGMAS}),
        "memorisation": Metric(pxm.memorisation, {"quantile": 0.05}),
    }
)


def param(metric: str, name: str) -> Any:
    """One parameter of the table, e.g. `param("prdc", "k_pr")` = 3."""
    return METRICS[metric].params[name]


def compute(metric: str, *args: Any, **run_options: Any) -> Any:
    """Call the metric's function with the table's parameters (plus per-run options: seed)."""
    entry = METRICS[metric]
    return entry.function(*args, **entry.params, **run_options)


def report_settings(n: int, real_size: int, parzen_validation: int) -> dict[str, Any]:
    """The report's echo of the table (the report format's keys, docs/evaluation.md)."""
    return {
        "k_precision_recall": param("prdc", "k_pr"),
        "k_density_coverage": param("prdc", "k_dc"),
        "kid": {
            "subsets": param("kid", "subsets"),
            # what KID actually used: a subset is never larger than either set
            "subset_size": min(param("kid", "subset_size"), n, real_size),
        },
        "inception_score_splits": param("inception_score", "splits"),
        "parzen": {
            "sigmas": list(param("parzen", "sigmas")),
            "validation_size": parzen_validation,
            "test_size": real_size,
        },
        "memorisation_quantile": param("memorisation", "quantile"),
    }
