"""The parameters of a request, from its query or its JSON body: one parse for every reader.

    POST /samples?n=16&seed=7&label=sneaker&format=png
    POST /samples  {"n": 16, "seed": 7, "label": "sneaker", "format": "png"}  (application/json)

The same rules for every endpoint that takes parameters (`/samples`, `/interpolate`):

- a parameter comes from the query or from the JSON body; given both ways it is a 422
  naming it, and so is a query parameter given twice: no spelling wins over another;
- whole numbers are decimal digits with an optional sign (`64`, `+64`, `-1`); `64.0`, `1e2`,
  ` 64` and `0x40` are 422 in the query, and in the body a JSON number with a fraction or an
  exponent, a string or a boolean;
- a default never exceeds the service's limit (with GAN_MAX_SAMPLES=4, `n` defaults to 4).

`read_params` is the one parse: its result is what the endpoint generates, what access
control charges (`Access.charge`) and what admission admits. The query model of each
endpoint also documents it in the OpenAPI schema (`service.api.entry`).
"""

import re
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import parse_qsl

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from service.errors import InvalidParameter
from service.pipeline import seeding
from service.settings import Settings

_WHOLE = re.compile(r"[+-]?[0-9]{1,20}")  # a seed has at most 20 digits; no int() of 5000
_SAMPLES_DEFAULT, _STEPS_DEFAULT = 16, 8


def _whole_number(value: object) -> object:
    """A query value as an int when it is written in decimal digits; else a clear error."""
    if isinstance(value, str):
        if not _WHOLE.fullmatch(value):
            raise PydanticCustomError("whole_number", "give a whole number in decimal digits")
        return int(value)
    return value


def _index_as_text(value: object) -> object:
    """A JSON class index (7) reads like the query's label=7; anything else is checked as text
    (so a wrong type is an error of `label` itself, not of one member of a union)."""
    return str(value) if type(value) is int else value


_DIGITS = BeforeValidator(_whole_number)  # after the bounds: they stay in the JSON schema
Format = Literal["json", "png", "npy"]
SeedText = Annotated[int, Field(ge=0, le=seeding.MAX_SEED), _DIGITS]
SeedJson = Annotated[StrictInt, Field(ge=0, le=seeding.MAX_SEED)]
BodyLabel = Annotated[
    StrictStr | None,
    BeforeValidator(_index_as_text),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}),
]
_LABEL = "Class index or name (conditional models)."
_MODEL = "Model name; else the default."
_FORMAT = "json, png or npy; else Accept."


class SampleQuery(BaseModel):
    """The query parameters of `POST /samples` (the URL carries text)."""

    model_config = ConfigDict(extra="ignore", title="SampleQuery")
    n: Annotated[int, Field(ge=1), _DIGITS] = Field(default=_SAMPLES_DEFAULT, description="Images.")
    seed: SeedText | None = Field(default=None, description="Request seed; drawn when absent.")
    label: str | None = Field(default=None, description=_LABEL)
    model: str | None = Field(default=None, description=_MODEL)
    format: Format | None = Field(default=None, description=_FORMAT)


class SampleBody(BaseModel):
    """The JSON body of `POST /samples`: the query parameters' names, each optional. Types
    are strict (`"n": "16"` or `"n": true` is a 422 naming `n`); unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", title="SampleRequest")
    n: StrictInt | None = Field(default=None, ge=1, description="Images.", examples=[16])
    seed: SeedJson | None = Field(default=None, description="Request seed; drawn when absent.")
    label: BodyLabel = Field(default=None, description=_LABEL, examples=["sneaker"])
    model: StrictStr | None = Field(default=None, description=_MODEL)
    format: Format | None = Field(default=None, description=_FORMAT)


class InterpolateQuery(BaseModel):
    """The query parameters of `POST /interpolate`; `from_seed` and `to_seed` are needed,
    from the query or the body."""

    model_config = ConfigDict(extra="ignore", title="InterpolateQuery")
    from_seed: SeedText | None = Field(default=None, description="Image seed of the start.")
    to_seed: SeedText | None = Field(default=None, description="Image seed of the end.")
    steps: Annotated[int, Field(ge=2), _DIGITS] = Field(
        default=_STEPS_DEFAULT, description="Frames, both ends included."
    )
    label: str | None = Field(default=None, description=f"{_LABEL} Else from_seed's.")
    model: str | None = Field(default=None, description=_MODEL)
    format: Format | None = Field(default=None, description=_FORMAT)


class InterpolateBody(BaseModel):
    """The JSON body of `POST /interpolate`: the query parameters' names, strict types."""

    model_config = ConfigDict(extra="forbid", title="InterpolateRequest")
    from_seed: SeedJson | None = Field(
        default=None,
        description="Image seed of the start.",
        examples=[7],
    )
    to_seed: SeedJson | None = Field(
        default=None, description="Image seed of the end.", examples=[42]
    )
    steps: StrictInt | None = Field(default=None, ge=2, description="Frames, both ends included.")
    label: BodyLabel = Field(default=None, description=f"{_LABEL} Else from_seed's.")
    model: StrictStr | None = Field(default=None, description=_MODEL)
    format: Format | None = Field(default=None, description=_FORMAT)


Query = TypeVar("Query", bound=BaseModel)


@dataclass(frozen=True)
class ParamModels(Generic[Query]):
    """One endpoint's parameter models, bounded by the service's limits: the query's (lax:
    text; it holds the defaults) and the body's (strict JSON types), and the names that must
    come one way or the other."""

    query: type[Query]
    body: type[BaseModel]
    required: tuple[str, ...] = ()


def sample_models(settings: Settings) -> ParamModels[SampleQuery]:
    """/samples' models: `n` at most GAN_MAX_SAMPLES, and its default too."""
    limit = settings.max_samples
    n_default = min(_SAMPLES_DEFAULT, limit)
    query = create_model(
        "SampleQueryLimited",
        __base__=SampleQuery,
        __doc__=SampleQuery.__doc__,
        n=(Annotated[int, Field(ge=1, le=limit), _DIGITS], Field(n_default, description="Images.")),
    )
    body = create_model(
        "SampleRequest",
        __base__=SampleBody,
        __doc__=SampleBody.__doc__,
        n=(
            StrictInt | None,
            Field(None, ge=1, le=limit, description="Images.", examples=[n_default]),
        ),
    )
    return ParamModels(query, body)


def interpolate_models(settings: Settings) -> ParamModels[InterpolateQuery]:
    """/interpolate's models: `steps` at most GAN_MAX_SAMPLES, and its default too."""
    limit = settings.max_samples
    frames = "Frames, both ends included."
    steps_default = max(2, min(_STEPS_DEFAULT, limit))
    query = create_model(
        "InterpolateQueryLimited",
        __base__=InterpolateQuery,
        __doc__=InterpolateQuery.__doc__,
        steps=(
            Annotated[int, Field(ge=2, le=limit), _DIGITS],
            Field(steps_default, description=frames),
        ),
    )
    body = create_model(
        "InterpolateRequest",
        __base__=InterpolateBody,
        __doc__=InterpolateBody.__doc__,
        steps=(StrictInt | None, Field(None, ge=2, le=limit, description=frames)),
    )
    return ParamModels(query, body, required=("from_seed", "to_seed"))


def _invalid(error: ValidationError, whole: str | None) -> InvalidParameter:
    """The first problem of a validation error as the 422 naming its field (`whole` names
    a problem with the input as a whole, such as a body that is not a JSON object)."""
    first = error.errors()[0]
    names = [str(part) for part in first["loc"] if isinstance(part, str)]
    field = names[-1] if names else whole
    message = f"{field}: {first['msg']}" if field else str(first["msg"])
    return InvalidParameter(message, field)


def is_json(content_type: str | None) -> bool:
    """No Content-Type, `application/json` or `application/*+json` (what FastAPI parses)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def read_params(
    query_string: bytes, body: bytes, content_type: str | None, models: ParamModels[Query]
) -> Query:
    """A request's parameters from its query and its optional JSON body (422 naming the first
    bad one). One pydantic validation per part: FastAPI's per-parameter machinery costs
    several times the rest of a request's event-loop time."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    known = models.query.model_fields
    given: set[str] = set()
    for name, _ in pairs:
        if name in given and name in known:
            raise InvalidParameter(f"{name} is given more than once; give it once", name)
        given.add(name)
    try:
        params = models.query.model_validate(dict(pairs))
    except ValidationError as error:
        raise _invalid(error, None) from None
    if body:
        params = _with_body(params, given, body, content_type, models)
    for name in models.required:
        if getattr(params, name) is None:
            raise InvalidParameter(f"{name}: Field required", name)
    return params


def _with_body(
    params: Query, given: set[str], raw: bytes, content_type: str | None, models: ParamModels[Query]
) -> Query:
    """The query's values, with the JSON body's fields in place of those the query left out."""
    if not is_json(content_type):
        raise InvalidParameter(
            "body: send the parameters as a JSON object with Content-Type: application/json",
            "body",
        )
    try:
        body = models.body.model_validate_json(raw)
    except ValidationError as error:
        raise _invalid(error, "body") from None
    changes: dict[str, Any] = {}
    for name in sorted(body.model_fields_set):
        value = getattr(body, name)
        if value is None:  # `"seed": null` is the same as no seed
            continue
        if name in given:
            raise InvalidParameter(
                f"{name} is given both as a query parameter and in the JSON body; give it once",
                name,
            )
        changes[name] = value
    return params.model_copy(update=changes)
