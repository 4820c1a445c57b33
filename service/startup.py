"""What `gan-serve` says when it cannot start: one line naming what the user set.

A settings error names the flag (`--port 99999`) or the environment variable
(`GAN_PROVIDERS`) the value came from, never pydantic's internal location
(`GAN_PROVIDERS.0`); a port that cannot be listened on is found before uvicorn starts, so the
process ends with that one line (exit status 2) instead of uvicorn's error, its exit status
3 and log lines of models that were loading meanwhile.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from service.settings import Settings

_ENV_PREFIX = "GAN_"


def settings_error(exc: ValidationError, flags: Mapping[str, Any]) -> str:
    """One line for the first error of `Settings(**flags)`; `flags` are the command-line ones.

    The value is shown as the user wrote it: `--port 99999`, `GAN_PROVIDERS=tpu,cpu`.
    """
    first = exc.errors()[0]
    loc = first["loc"]
    message = str(first["msg"]).removeprefix("Value error, ")
    if not loc or not isinstance(loc[0], str):  # a check across settings: its message names them
        return f"invalid settings: {message}"
    name = loc[0]
    variable = f"{_ENV_PREFIX}{name.upper()}"
    if name in flags:
        where = f"--{name.replace('_', '-')} {flags[name]}"
    elif variable in os.environ:
        where = f"{variable}={os.environ[variable]}"
    else:
        where = variable
    # An error in one element of a list setting (loc ("providers", 0)) names that element.
    element = f"{first['input']!r}: " if len(loc) > 1 else ""
    return f"invalid setting {where}: {element}{message}"


def _endpoint(settings: Settings, flags: Mapping[str, Any]) -> str:
    """host:port, saying where each came from when the user set it."""
    parts = []
    for name in ("host", "port"):
        value = getattr(settings, name)
        if name in flags:
            parts.append(f"--{name} {value}")
        elif f"{_ENV_PREFIX}{name.upper()}" in os.environ:
            parts.append(f"{_ENV_PREFIX}{name.upper()}={value}")
    where = f" ({', '.join(parts)})" if parts else " (set --host/--port or GAN_HOST/GAN_PORT)"
    return f"{settings.host}:{settings.port}{where}"


def listen_problem(settings: Settings, flags: Mapping[str, Any]) -> str | None:
    """Why gan-serve cannot listen on its host and port (and GAN_GRPC_PORT when set), or None
    when it can.

    Binds a throw-away socket the way uvicorn (asyncio's create_server) and grpcio will: each
    address the host resolves to, SO_REUSEADDR, IPv6 sockets IPv6-only; then closes it again.
    Port 0 (any free port) always works.
    """
    if reason := _bind_problem(settings.host, settings.port):
        return f"cannot listen on {_endpoint(settings, flags)}: {reason}"
    grpc_port = settings.grpc_port
    if grpc_port is None:
        return None
    where = f"{settings.host}:{grpc_port} ({_ENV_PREFIX}GRPC_PORT={grpc_port})"
    if reason := _bind_problem(settings.host, grpc_port):
        return f"cannot listen on {where}: {reason}"
    return None


def _bind_problem(host: str, port: int) -> str | None:
    """Why a listening socket cannot bind host:port, in a few words, or None."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror})"
    for family, kind, proto, _, address in addresses:
        try:
            probe = socket.socket(family, kind, proto)
        except OSError:  # an address family this machine lacks: asyncio skips it too
            continue
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio's create_server binds it
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return (exc.strerror or str(exc)).lower()
    return None
