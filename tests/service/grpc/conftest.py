"""A real server with the v2 gRPC server on (GAN_GRPC_PORT), shared by the gRPC tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.settings import Settings
from tests.service.conftest import Server, settings_for
from tests.support.ports import free_port


def grpc_settings(model_dir: Path, **overrides: object) -> Settings:
    """The test settings with gRPC on a free port (the default model "fashion")."""
    values: dict[str, object] = {"default_model": "fashion", "grpc_port": free_port()}
    values.update(overrides)
    return settings_for(model_dir, **values)


def grpc_url(server: Server) -> str:
    return f"127.0.0.1:{server.settings.grpc_port}"


@pytest.fixture(scope="module")
def grpc_server(model_dir: Path) -> Iterator[Server]:
    started = Server(grpc_settings(model_dir)).start()
    yield started
    started.stop()
