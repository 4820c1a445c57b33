"""The metric table is the one place the evaluation's parameters are written: the report
echoes it and the printed labels read the report."""

from __future__ import annotations

import inspect

from evaluation.metrics import METRICS, compute, param, report_settings
from evaluation.render import metric_rows


def test_no_metric_function_has_a_default_for_a_table_parameter() -> None:
    for name, metric in METRICS.items():
        signature = inspect.signature(metric.function)
        for key in metric.params:
            default = signature.parameters[key].default
            assert default is inspect.Parameter.empty, f"{name}: {key} has a default"


def test_the_report_settings_echo_the_table() -> None:
    settings = report_settings(n=10000, real_size=10000, parzen_validation=1000)
    assert settings["k_precision_recall"] == param("prdc", "k_pr") == 3
    assert settings["k_density_coverage"] == param("prdc", "k_dc") == 5
    assert settings["kid"] == {"subsets": 100, "subset_size": 1000}
    assert settings["inception_score_splits"] == param("inception_score", "splits") == 10
    assert settings["parzen"]["sigmas"] == list(param("parzen", "sigmas"))
    assert settings["memorisation_quantile"] == param("memorisation", "quantile") == 0.05


def test_kid_subsets_never_exceed_either_set() -> None:
    assert report_settings(n=60, real_size=500, parzen_validation=10)["kid"]["subset_size"] == 60


def test_the_table_labels_read_k_from_the_report() -> None:
    labels = [label for label, _, _ in metric_rows(report_settings(100, 100, 10))]
    assert "precision k=3" in labels and "coverage k=5" in labels
    other = {**report_settings(100, 100, 10), "k_precision_recall": 7}
    assert "recall k=7" in [label for label, _, _ in metric_rows(other)]


def test_compute_calls_the_function_with_the_table_parameters() -> None:
    import numpy as np

    result = compute("class_histogram", np.full(100, 2), 10)
    assert result == METRICS["class_histogram"].function(
        np.full(100, 2), 10, **METRICS["class_histogram"].params
    )
