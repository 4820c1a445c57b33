"""`python -m bench v2`'s own parts: the requests it sends (checked against a real gan-serve
over HTTP and gRPC, and against onnxruntime on the file itself) and its reading of h2load.

h2load's output is recorded (`h2load-output.txt`: `h2load -c2 -t1 -m1 -D1` with one framed
ModelInfer against gan-serve's gRPC port): the suite does not need Debian's nghttp2-client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from bench import h2load, v2
from core.contract import inspect
from tests.service.conftest import Server
from tests.service.grpc.conftest import grpc_settings

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

RECORDED = (Path(__file__).parent / "h2load-output.txt").read_text()
LOG = "1796511866943219\t200\t4914\n1796511866943241\t200\t4936\n1796511866948231\t200\t1943\n"


def test_parse_reads_the_summary_and_the_latencies_from_the_log() -> None:
    result = h2load.parse(RECORDED, LOG)
    assert (result.requests, result.seconds) == (1269, 1.0)
    assert result.data_bytes == 16047774
    assert result.latency_ms == {"p50": 4.914, "p99": 4.936, "max": 4.936, "mean": 3.931}
    # 12,646 bytes per answer there: all good; a longer frame would count fewer
    assert result.good(16047774 // 1269) == 1269
    assert result.good(2 * 16047774 // 1269) == 1269 // 2


def test_parse_refuses_output_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="unexpected h2load output"):
        h2load.parse("h2load: connection refused\n", "")


def test_a_frame_is_the_message_after_its_flag_and_length() -> None:
    assert h2load.frame(b"abc") == b"\x00\x00\x00\x00\x03abc"


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Any]:
    started = Server(grpc_settings(model_dir)).start()
    yield SimpleNamespace(base_url=started.url, grpc_port=started.settings.grpc_port)
    started.stop()


def test_the_benchmarks_requests_give_the_files_images_over_http_and_grpc(
    server: Any, model_dir: Path
) -> None:
    spec = inspect(model_dir / "fashion.onnx")
    inputs = v2.Inputs.fixed(spec, 4)
    assert inputs.labels is not None
    target = v2.Target(spec.name, (4,))
    session = ort.InferenceSession(str(model_dir / "fashion.onnx"))
    (expected,) = session.run(["image"], {"z": inputs.z, "label": inputs.labels})
    over_http = v2.http_images(server, target.http_request(inputs))
    answer = v2.grpc_answer(server, target.grpc_message(inputs))
    np.testing.assert_array_equal(over_http, expected)
    np.testing.assert_array_equal(v2.grpc_images(answer), expected)
    # the check the benchmark makes before its load: one server, both protocols
    checked = v2.check_answers({"gan-serve": server}, {"gan-serve": target}, inputs)
    assert checked == {
        "answer_frame_bytes": {"gan-serve": len(h2load.frame(answer))},
        "largest_difference": 0.0,
    }
