"""Service settings: one pydantic-settings class, read from `GAN_*` environment variables.

Built once in `service.app.create_app` (or by `gan-serve`, whose flags override the
environment) and passed down explicitly; nothing else in `service/` reads the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The repository's models/ folder, next to the service package (an editable or source
# install); an installed wheel has none and needs GAN_MODEL_DIR or GAN_MODEL_PATH.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"

Provider = Literal["cuda", "cpu"]

# Millisecond-scale latencies, from 0.5 ms up to the default request deadline.
DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
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
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def _default_providers() -> list[Provider]:
    return ["cuda", "cpu"]


def _split_csv(value: object) -> object:
    """Let list settings be written `a,b,c` in the environment (JSON lists work too)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the service; the environment variable is `GAN_` + the upper-cased name."""

    model_config = SettingsConfigDict(env_prefix="GAN_", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address gan-serve binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to listen on.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="Log level of the service and uvicorn."
    )
    access_log: bool = Field(default=True, description="Log one line per HTTP request.")

    model_dir: Path = Field(
        default=DEFAULT_MODEL_DIR, description="Serve every *.onnx file in this directory."
    )
    model_path: Path | None = Field(
        default=None, description="Serve this one ONNX file instead of model_dir."
    )
    default_model: str | None = Field(
        default=None, description="Model for requests that name none (default: first by name)."
    )

    providers: Annotated[list[Provider], NoDecode] = Field(
        default_factory=_default_providers,
        description="onnxruntime execution providers in order of preference.",
    )
    intra_op_threads: int = Field(
        default=0, ge=0, description="onnxruntime intra-op threads per model (0: its default)."
    )

    max_batch: int = Field(default=256, ge=1, description="Most images in one onnxruntime run.")
    max_delay_ms: float = Field(
        default=2.0, ge=0, description="Longest wait for more work before a run that is not full."
    )
    max_queue: int = Field(default=4096, ge=1, description="Most images waiting per model.")
    max_samples: int = Field(default=1024, ge=1, description="Largest n of one request.")
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Request deadline; work not started by then is dropped."
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, longest wait for queued and running work."
    )
    encode_threads: int = Field(
        default=2, ge=1, description="Threads that build inputs and encode responses."
    )
    latency_buckets: Annotated[tuple[float, ...], NoDecode] = Field(
        default=DEFAULT_LATENCY_BUCKETS,
        description="Histogram buckets, in seconds, of the latency metrics.",
    )

    _split_providers = field_validator("providers", mode="before")(_split_csv)
    _split_buckets = field_validator("latency_buckets", mode="before")(_split_csv)

    @field_validator("latency_buckets")
    @classmethod
    def _buckets_increase(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(b <= 0 for b in value) or list(value) != sorted(set(value)):
            raise ValueError("must be positive and strictly increasing")
        return value

    @field_validator("providers")
    @classmethod
    def _providers_unique(cls, value: list[Provider]) -> list[Provider]:
        if not value or len(set(value)) != len(value):
            raise ValueError("must name each provider once, e.g. 'cuda,cpu'")
        return value

    @model_validator(mode="after")
    def _queue_holds_a_request(self) -> Settings:
        # A request that can never fit in the queue would be refused forever.
        if self.max_queue < self.max_samples:
            raise ValueError(
                f"max_queue ({self.max_queue}) must be at least max_samples ({self.max_samples})"
            )
        return self
