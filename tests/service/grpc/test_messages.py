"""The service's v2 gRPC messages (built from a table, service/grpc/messages.py) are the
published proto's: every message tritonclient generated from grpc_service.proto for the calls
served has the same fields, numbers, types and nested types, so the wire format is one."""

from __future__ import annotations

import pytest
import tritonclient.grpc.service_pb2 as published

from service.grpc.messages import MESSAGES, TABLE


def fields(descriptor: object) -> list[tuple[str, int, int, bool, str | None]]:
    return [
        (
            f.name,
            f.number,
            f.type,
            f.is_repeated,
            f.message_type.full_name if f.message_type else None,
        )
        for f in descriptor.fields  # type: ignore[attr-defined]
    ]


def published_descriptor(path: str) -> object:
    cls: object = published
    for part in path.split("."):
        cls = getattr(cls, part)
    return cls.DESCRIPTOR  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", sorted(TABLE))
def test_each_message_is_the_published_one(path: str) -> None:
    ours, theirs = MESSAGES[path].DESCRIPTOR, published_descriptor(path)
    assert ours.full_name == theirs.full_name  # type: ignore[attr-defined]
    assert fields(ours) == fields(theirs)
    for nested in theirs.nested_types:  # type: ignore[attr-defined]
        mine = ours.nested_types_by_name[nested.name]
        assert fields(mine) == fields(nested)
        assert mine.GetOptions().map_entry == nested.GetOptions().map_entry
    assert [o.name for o in ours.oneofs] == [o.name for o in theirs.oneofs]  # type: ignore[attr-defined]


def test_a_request_written_by_tritonclient_reads_back_whole() -> None:
    request = published.ModelInferRequest(model_name="m", id="7", raw_input_contents=[b"abc"])
    tensor = request.inputs.add(name="seed", datatype="INT64", shape=[3])
    tensor.parameters["binary_data_size"].int64_param = 24
    request.parameters["priority"].uint64_param = 2
    request.outputs.add(name="png")
    data = request.SerializeToString()
    ours = MESSAGES["ModelInferRequest"].FromString(data)
    assert ours.SerializeToString(deterministic=True) == request.SerializeToString(
        deterministic=True
    )
    assert ours.inputs[0].parameters["binary_data_size"].int64_param == 24
