"""Service settings: one pydantic-settings class, read from `GAN_*` environment variables.

Built once in `service.app.create_app` (or by `gan-serve`, whose flags override the
environment) and passed down explicitly; nothing else in `service/` reads the environment.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The repository's models/ folder, next to the service package (an editable or source
# install); an installed wheel has none and needs GAN_MODEL_DIR or GAN_MODEL_PATH.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"

# "auto": CUDA where it can work, else the CPU (service.models.providers.choose_providers).
Provider = Literal["auto", "cuda", "cpu"]

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
    return ["auto"]


def _auto_or_int(value: object) -> object:
    """GAN_WORKERS: `auto`, or a whole number of at least 1 (text from the environment)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and value < 1:
        raise ValueError("give auto or a number of worker processes of at least 1")
    return value


def _on_off_auto(value: object) -> object:
    """GAN_CUDA_GRAPHS: auto, on or off; 1 and 0 (and booleans) stand for on and off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    text = {"1": "on", "0": "off"}.get(text, text)
    if text not in ("auto", "on", "off"):
        raise ValueError("give auto, on (1) or off (0)")
    return text


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
    grpc_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="TCP port of the Open Inference Protocol (v2) over gRPC, on host; unset: "
        "no gRPC server.",
    )
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
        description="onnxruntime execution providers in order of preference, or auto.",
    )
    intra_op_threads: int = Field(
        default=0,
        ge=0,
        description="onnxruntime intra-op threads per run slot (0: auto, cores / run slots).",
    )
    cuda_graphs: Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off_auto)] = Field(
        default="auto",
        description="CUDA graphs on the CUDA provider: auto (on, and off with one warning "
        "where onnxruntime cannot capture the model), on (a model it cannot capture fails "
        "to load) or off; nothing on the CPU.",
    )
    devices: Annotated[tuple[int, ...] | None, NoDecode] = Field(
        default=None,
        description="CUDA device ids to run each model on, comma-separated (default: every "
        "GPU the driver reports); ignored on the CPU.",
    )

    max_batch: int = Field(default=256, ge=1, description="Most images in one onnxruntime run.")
    max_run_ms: float = Field(
        default=50.0,
        ge=0,
        description="Longest onnxruntime run, timed at start-up: the max batch is lowered to "
        "the largest power of two whose run takes at most this (0: no limit).",
    )
    max_delay_ms: float = Field(
        default=0.0,
        ge=0,
        description="Extra wait for more work before a run that is not full, even when a run "
        "slot is free (0: none; work accumulates only while every slot is busy).",
    )
    max_queue: int = Field(
        default=4096,
        ge=1,
        description="Most images a model holds for admitted requests, from admission to the "
        "last byte sent.",
    )
    max_samples: int = Field(default=1024, ge=1, description="Largest n of one request.")
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Request deadline; work not started by then is dropped."
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, longest wait for queued and running work."
    )
    encode_threads: int = Field(
        default=2,
        ge=1,
        description="Deprecated and ignored: inputs are built and responses encoded in the "
        "run slots.",
    )
    # -- processes: HTTP workers on one port (service/workers/) -------------------------------
    workers: Annotated[int | Literal["auto"], BeforeValidator(_auto_or_int)] = Field(
        default=1,
        description="HTTP worker processes on the one port, each with its own engine; the "
        "queue and memory budget are split among them, each runs on every core (auto: one "
        "per usable core).",
    )
    # -- the request pipeline: run slots, memory budget, deadline grace ----------------------
    run_slots: int = Field(
        default=0,
        ge=0,
        description="Concurrent onnxruntime runs per model (0: auto, one per CPU core on the "
        "CPU, one on a GPU).",
    )
    memory_budget_mb: int = Field(
        default=1024,
        ge=1,
        description="Memory for images, in MiB: runs' working memory plus everything admitted "
        "requests hold.",
    )
    admission_wait_ms: float = Field(
        default=0.0,
        ge=0,
        description="How long a request that does not fit waits for room before its 503 "
        "(0: refused at once).",
    )
    deadline_grace_s: float = Field(
        default=1.0,
        ge=0,
        description="After the request deadline, how long a request whose images are all "
        "running may still wait for them before its 504.",
    )
    latency_buckets: Annotated[tuple[float, ...], NoDecode] = Field(
        default=DEFAULT_LATENCY_BUCKETS,
        description="Histogram buckets, in seconds, of the latency metrics.",
    )

    # -- reliability: slow and idle clients, request size (service/http/) --------------------
    keep_alive_timeout_s: float = Field(
        default=5.0, gt=0, description="Close a keep-alive connection idle for this long."
    )
    read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A request's head and body must arrive within this time of its first byte "
        "(of the connection's opening, for the first request); else 408 and close.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Most open connections (lowered to the open-file limit less a reserve); "
        "beyond it idle ones close, oldest first, or the newcomer gets 503.",
    )
    max_header_bytes: int = Field(
        default=16384, ge=1024, description="Largest request head (request line and headers)."
    )
    max_body_bytes: int = Field(default=65536, ge=0, description="Largest request body.")
    # -- TLS without a proxy (uvicorn's ssl_certfile / ssl_keyfile) --------------------------
    tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain) to serve HTTPS with; needs tls_key_file. Plain "
        "HTTP is then refused on the port.",
    )
    tls_key_file: Path | None = Field(
        default=None, description="PEM private key of tls_cert_file; needs tls_cert_file."
    )

    # -- access control (service/http/access.py); keys never in the repr, the log or a response
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(), repr=False, description="API keys, comma-separated; none: no keys needed."
    )
    api_keys_file: Path | None = Field(
        default=None, description="A file of API keys, one per line (# comments); adds to api_keys."
    )
    metrics_auth: bool = Field(default=False, description="/metrics needs a key too.")
    rate_limit_images_per_s: float = Field(
        default=0.0, ge=0, description="Images per second per API key (0: no limit)."
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, description="Token bucket size in images (default max_samples)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed cross-origin requests (none: CORS off)."
    )

    _split_providers = field_validator("providers", mode="before")(_split_csv)
    _split_buckets = field_validator("latency_buckets", mode="before")(_split_csv)
    _split_devices = field_validator("devices", mode="before")(_split_csv)

    @field_validator("devices")
    @classmethod
    def _devices_listed_once(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and (not value or min(value) < 0 or len(set(value)) != len(value)):
            raise ValueError("give CUDA device ids (0, 1, ...), each once, e.g. '0,1', or unset it")
        return value

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
            raise ValueError("must name each provider once, e.g. 'cuda,cpu', or be 'auto'")
        if "auto" in value and len(value) > 1:
            raise ValueError("'auto' stands alone: 'auto', or a list such as 'cuda,cpu'")
        return value

    @model_validator(mode="after")
    def _queue_holds_a_request(self) -> Settings:
        # A request that can never fit in the queue would be refused forever.
        if self.max_queue < self.max_samples:
            raise ValueError(
                f"max_queue ({self.max_queue}) must be at least max_samples ({self.max_samples})"
            )
        return self

    @model_validator(mode="after")
    def _grpc_has_a_port_of_its_own(self) -> Settings:
        # Both servers bind host: one port for both would fail at start, less clearly.
        if self.grpc_port and self.grpc_port == self.port:
            raise ValueError(f"grpc_port ({self.grpc_port}) must differ from port")
        return self

    # -- access control validators (service/http/access.py) ---------------------------------
    _split_api_keys = field_validator("api_keys", mode="before")(_split_csv)
    _split_cors_origins = field_validator("cors_origins", mode="before")(_split_csv)

    def api_key_values(self) -> tuple[str, ...]:
        """Every API key: GAN_API_KEYS, then the lines of GAN_API_KEYS_FILE (read now)."""
        keys = [key.get_secret_value() for key in self.api_keys]
        if self.api_keys_file is not None:
            keys += read_key_file(self.api_keys_file)
        return tuple(dict.fromkeys(keys))

    @model_validator(mode="after")
    def _tls_is_coherent(self) -> Settings:
        cert, key = self.tls_cert_file, self.tls_key_file
        if (cert is None) != (key is None):
            raise ValueError(
                "GAN_TLS_CERT_FILE and GAN_TLS_KEY_FILE go together: set both or neither"
            )
        if cert is not None and key is not None:
            check_tls_files(cert, key)
        return self

    @model_validator(mode="after")
    def _access_control_is_coherent(self) -> Settings:
        if self.api_keys_file is not None:
            read_key_file(self.api_keys_file)  # unreadable or empty: refuse at start
        if self.rate_limit_images_per_s > 0 and not (self.api_keys or self.api_keys_file):
            raise ValueError("GAN_RATE_LIMIT_IMAGES_PER_S limits each API key: set GAN_API_KEYS")
        if self.rate_limit_burst is not None and self.rate_limit_burst < self.max_samples:
            raise ValueError(
                f"rate_limit_burst ({self.rate_limit_burst}) must be at least max_samples "
                f"({self.max_samples}), or the largest request could never pass"
            )
        return self


def read_key_file(path: Path) -> list[str]:
    """The keys in `path`: one per line; blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ValueError(f"cannot read the API key file {path}: {reason}") from exc
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ValueError(f"the API key file {path} holds no key")
    return keys


def check_tls_files(cert: Path, key: Path) -> None:
    """Load the certificate and its key as the server will: unreadable, not PEM, or a key
    of another certificate is refused at start."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ValueError(
            f"cannot load the TLS certificate {cert} with the key {key}: {reason}"
        ) from exc
