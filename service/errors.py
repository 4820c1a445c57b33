"""The errors a request can end with, in the service's own words.

Code inside the service raises these and knows nothing about status codes or HTTP;
`service.http.errors` maps each to its status and the one JSON error shape.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the errors a request can end with; `field` names the parameter at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadRequest(ServiceError):
    """A request that cannot be read: malformed, or its parts disagree (the v2 protocol's
    tensors: a datatype, shape or data size that does not fit)."""


class InvalidParameter(ServiceError):
    """A parameter that passed type checks but makes no sense for this model."""


class ModelNotFound(ServiceError):
    """The request names a model the service does not serve."""


class NotAcceptable(ServiceError):
    """Neither `format` nor the Accept header names a format the service can write."""


class NotReady(ServiceError):
    """Models are still loading, or failed to load."""


class Draining(ServiceError):
    """The service is shutting down and takes no new work."""


class Retryable(ServiceError):
    """A refusal that passes: the request may be sent again in `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueFull(Retryable):
    """The model's queue cannot take the request's images now."""


class TooLarge(ServiceError):
    """The request asks for more images than the model can ever hold at once."""


class DeadlineExceeded(ServiceError):
    """The request's deadline passed before its images ran."""


class InferenceFailed(ServiceError):
    """onnxruntime failed on a run that held some of the request's images."""


class Cancelled(ServiceError):
    """The client went away; its images left the queue. Nobody reads this answer."""


class Unauthorized(ServiceError):
    """No API key, or one that is not valid, where keys are needed."""


class RateLimited(Retryable):
    """The API key's bucket cannot pay for the request's images now."""
