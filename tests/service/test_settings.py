"""Settings come from GAN_* variables, with comma lists, and refuse nonsense up front."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings
from service.startup import settings_error


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("GAN_"):
            monkeypatch.delenv(key)


def test_defaults_match_the_documented_contract() -> None:
    s = Settings()
    assert (s.max_batch, s.max_delay_ms, s.max_queue, s.max_samples) == (256, 0.0, 4096, 1024)
    assert s.max_run_ms == 50.0
    assert (s.request_timeout_s, s.providers) == (30.0, ["auto"])
    assert s.model_dir == Path(__file__).resolve().parents[2] / "models"
    assert s.model_path is None and s.default_model is None
    # the documented buckets (docs/service.md), written out: not the constant that sets them
    assert s.latency_buckets == (
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
    )


def test_environment_variables_use_the_gan_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAN_MAX_BATCH", "32")
    monkeypatch.setenv("GAN_MAX_DELAY_MS", "0")
    monkeypatch.setenv("GAN_MODEL_PATH", "/m/g.onnx")
    monkeypatch.setenv("GAN_DEFAULT_MODEL", "fashion")
    monkeypatch.setenv("MAX_BATCH", "7")  # no prefix: ignored
    s = Settings()
    assert (s.max_batch, s.max_delay_ms, s.model_path, s.default_model) == (
        32,
        0.0,
        Path("/m/g.onnx"),
        "fashion",
    )


@pytest.mark.parametrize("value", ["cpu", " cpu , cuda ", '["cpu", "cuda"]'])
def test_providers_are_a_comma_or_json_list(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GAN_PROVIDERS", value)
    assert Settings().providers[0] == "cpu"


@pytest.mark.parametrize("value", ["tpu", "cpu,cpu", "", "auto,cpu", "cuda,auto"])
def test_bad_providers_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GAN_PROVIDERS", value)
    with pytest.raises(ValidationError):
        Settings()


def test_latency_buckets_come_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAN_LATENCY_BUCKETS", "0.001,0.01,0.1")
    assert Settings().latency_buckets == (0.001, 0.01, 0.1)
    monkeypatch.setenv("GAN_LATENCY_BUCKETS", "0.1,0.01")
    with pytest.raises(ValidationError, match="increasing"):
        Settings()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("auto", "auto"), ("on", "on"), (" OFF ", "off"), ("1", "on"), ("0", "off")],
)
def test_cuda_graphs_are_auto_on_or_off(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    assert Settings().cuda_graphs == "auto"
    monkeypatch.setenv("GAN_CUDA_GRAPHS", value)
    assert Settings().cuda_graphs == expected


def test_a_bad_cuda_graphs_value_is_one_line_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GAN_CUDA_GRAPHS", "maybe")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert settings_error(caught.value, {}) == (
        "invalid setting GAN_CUDA_GRAPHS=maybe: give auto, on (1) or off (0)"
    )


@pytest.mark.parametrize(
    ("value", "expected"), [("0,1", (0, 1)), (" 2 ", (2,)), ("[3, 1]", (3, 1))]
)
def test_devices_are_a_list_of_cuda_ids(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[int, ...]
) -> None:
    assert Settings().devices is None  # every GPU the driver reports
    monkeypatch.setenv("GAN_DEVICES", value)
    assert Settings().devices == expected


@pytest.mark.parametrize("value", ["0,0", "-1", "", "a"])
def test_bad_devices_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GAN_DEVICES", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert settings_error(caught.value, {}).startswith(f"invalid setting GAN_DEVICES={value}: ")


def test_explicit_values_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAN_PORT", "1")
    assert Settings(port=8123).port == 8123


def test_a_queue_smaller_than_one_request_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_queue"):
        Settings(max_queue=10, max_samples=11)


def test_grpc_on_the_http_port_is_refused() -> None:
    with pytest.raises(ValidationError, match="grpc_port"):
        Settings(port=9000, grpc_port=9000)
    assert Settings(port=0, grpc_port=0).grpc_port == 0  # both ephemeral: two ports


def test_every_setting_is_documented_in_docs_service_md() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "service.md").read_text()
    for name in Settings.model_fields:
        assert f"| `GAN_{name.upper()}` |" in docs, name
