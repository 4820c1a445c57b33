"""Silence one notice of torch's ONNX exporter that is not about the user's model.

On start-up the dynamo exporter's op registry looks up torchvision's detection ops (nms,
roi_align, roi_pool, deform_conv2d) and, with torchvision absent (this project never
installs it), logs "torchvision is not installed. Skipping torchvision::…" once per op.
A generator uses none of them. Only those records are dropped; every other log line of
the exporter still shows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"


class _NoTorchvisionNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("torchvision is not installed")


@contextmanager
def no_torchvision_notices() -> Iterator[None]:
    logger = logging.getLogger(REGISTRY_LOGGER)
    notice_filter = _NoTorchvisionNotice()
    logger.addFilter(notice_filter)
    try:
        yield
    finally:
        logger.removeFilter(notice_filter)
