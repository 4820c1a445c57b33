"""The parameters of a `/samples` request: query parameters or a JSON body, and the label.

    POST /samples?n=16&seed=7&label=sneaker&format=png
    POST /samples  {"n": 16, "seed": 7, "label": "sneaker", "format": "png"}  (application/json)

Both ways take the same names with the same rules; a field given both ways is refused (422
naming it) rather than one silently winning. `sample_models(settings)` gives the pydantic
models of both (they document the route and validate it), `read_sample_params` reads a
request into a `SampleParams` (`read_query_params` a query alone, for `service.fast_path`);
`resolve_label` turns a label into a class index of one model.

Labels: a class index (`7`) or a class name as people type it. Names compare on letters and
digits only, ignoring case and the separators space, `-`, `_` and `/`: `ankle-boot`,
`Ankle_Boot`, `ankle boot` and `ankleboot` all name "Ankle boot". Each `/`-separated part of a
name is a short form of it (`t-shirt` or `top` for "T-shirt/top") unless another class
claims the same part. Anything else — `--5`, `²`, a 5000-digit number — is a 422 that lists
the classes, never a 500.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Protocol

from fastapi import Request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
)

from service import seeding
from service.edge import has_body
from service.encoding import Format
from service.errors import InvalidParameter
from service.settings import Settings

_SEPARATORS = re.compile(r"[\s\-_/]+")
_INDEX = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: no '²', no '--5'
_MAX_INDEX_DIGITS = 9  # longer numbers are out of range of any model: no int() of 5000 digits
_MAX_ECHO = 40  # characters of an unknown label quoted back in the error


@dataclass(frozen=True)
class SampleParams:
    """What a `/samples` request asks for, from its query or its JSON body."""

    n: int
    seed: int | None
    label: str | None
    model: str | None
    format: Format | None


def _index_as_text(value: object) -> object:
    """A JSON class index (7) reads like the query's label=7; anything else is checked as text
    (so a wrong type is an error of `label` itself, not of one member of a union)."""
    return str(value) if type(value) is int else value


class SampleBody(BaseModel):
    """The JSON body of `POST /samples`: the query parameters' names, each optional.

    Types are strict (`"n": "16"` or `"n": true` is a 422 naming `n`); `label` may be a class
    index or a class name; unknown fields are refused.
    """

    model_config = ConfigDict(extra="forbid", title="SampleRequest")

    n: StrictInt | None = Field(default=None, description="Images.", examples=[16])
    seed: StrictInt | None = Field(
        default=None, ge=0, le=seeding.MAX_SEED, description="Request seed; drawn when absent."
    )
    label: Annotated[
        StrictStr | None,
        BeforeValidator(_index_as_text),
        WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}),
    ] = Field(
        default=None, description="Class index or name (conditional models).", examples=["sneaker"]
    )
    model: StrictStr | None = Field(default=None, description="Model name; else the default.")
    format: Literal["json", "png", "npy"] | None = Field(
        default=None, description="json, png or npy; else Accept."
    )


def _merge(query: SampleParams, given: Sequence[str], body: SampleBody | None) -> SampleParams:
    """The query's values, with the body's fields in place of those the query left out."""
    if body is None:
        return query
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
    return replace(query, **changes)


class SampleQuery(BaseModel):
    """The query parameters of `POST /samples` (lax: the URL carries text)."""

    model_config = ConfigDict(extra="ignore", title="SampleQuery")

    n: int = Field(default=16, ge=1, description="Images.")
    seed: int | None = Field(
        default=None, ge=0, le=seeding.MAX_SEED, description="Request seed; drawn when absent."
    )
    label: str | None = Field(default=None, description="Class index or name (conditional models).")
    model: str | None = Field(default=None, description="Model name; else the default.")
    format: Literal["json", "png", "npy"] | None = Field(
        default=None, description="json, png or npy; else Accept."
    )


@dataclass(frozen=True)
class SampleModels:
    """The query and body models of one service: `n` bounded by its GAN_MAX_SAMPLES. They
    document the route (FastAPI reads them) and validate requests (`read_sample_params`)."""

    query: type[SampleQuery]
    body: type[SampleBody]


def sample_models(settings: Settings) -> SampleModels:
    limit = settings.max_samples

    class SampleQueryLimited(SampleQuery):
        __doc__ = SampleQuery.__doc__
        model_config = ConfigDict(extra="ignore", title="SampleQuery")
        n: int = Field(default=16, ge=1, le=limit, description="Images.")

    class SampleRequest(SampleBody):
        __doc__ = SampleBody.__doc__
        model_config = ConfigDict(extra="forbid", title="SampleRequest")
        n: StrictInt | None = Field(
            default=None, ge=1, le=limit, description="Images.", examples=[16]
        )

    return SampleModels(SampleQueryLimited, SampleRequest)


def _invalid(error: ValidationError, whole: str | None) -> InvalidParameter:
    """The first problem of a validation error as the 422 naming its field (`whole` names
    a problem with the input as a whole, such as a body that is not a JSON object)."""
    first = error.errors()[0]
    names = [str(part) for part in first["loc"] if isinstance(part, str)]
    field = names[-1] if names else whole
    message = f"{field}: {first['msg']}" if field else str(first["msg"])
    return InvalidParameter(message, field)


def _is_json(content_type: str | None) -> bool:
    """No Content-Type, `application/json` or `application/*+json` (what FastAPI parses)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def read_query_params(query: dict[str, str], models: SampleModels) -> SampleParams:
    """A `/samples` request's parameters from its query alone (422 naming the first bad one)."""
    try:
        parsed = models.query.model_validate(query)
    except ValidationError as error:
        raise _invalid(error, None) from None
    return SampleParams(
        n=parsed.n, seed=parsed.seed, label=parsed.label, model=parsed.model, format=parsed.format
    )


async def read_sample_params(request: Request, models: SampleModels) -> SampleParams:
    """A `/samples` request's parameters from its query and its optional JSON body.

    One pydantic validation per part instead of FastAPI's per-parameter machinery (which
    costs several times the rest of the request's event-loop time); the same models document
    the route, so what is enforced is what the schema says."""
    query_params = request.query_params
    params = read_query_params(dict(query_params), models)
    if not has_body(request.scope):
        return params
    raw = await request.body()
    if not raw:
        return params
    if not _is_json(request.headers.get("content-type")):
        raise InvalidParameter(
            "body: send the parameters as a JSON object with Content-Type: application/json",
            "body",
        )
    try:
        body = models.body.model_validate_json(raw)
    except ValidationError as error:
        raise _invalid(error, "body") from None
    return _merge(params, list(query_params), body)


class LabelledModel(Protocol):
    """What `resolve_label` needs to know about a model (a `GeneratorSpec` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def conditional(self) -> bool: ...
    @property
    def num_classes(self) -> int | None: ...
    @property
    def class_names(self) -> Sequence[str] | None: ...


def _key(text: str) -> str:
    """A class name as compared: lower case, separators dropped."""
    return _SEPARATORS.sub("", text).casefold()


def class_keys(class_names: Sequence[str]) -> dict[str, int]:
    """Every spelling key that names exactly one class: full names first, then each
    `/`-separated part that no other class also claims."""
    keys = {_key(name): index for index, name in enumerate(class_names)}
    parts: dict[str, set[int]] = {}
    for index, name in enumerate(class_names):
        for part in name.split("/"):
            if (key := _key(part)) and key not in keys:
                parts.setdefault(key, set()).add(index)
    keys.update({key: owners.pop() for key, owners in parts.items() if len(owners) == 1})
    return keys


def _known(spec: LabelledModel) -> str:
    assert spec.num_classes is not None
    if not spec.class_names:
        return f"a class index 0..{spec.num_classes - 1}"
    names = ", ".join(f"{i} {name}" for i, name in enumerate(spec.class_names))
    return f"a class index or name: {names}"


def resolve_label(spec: LabelledModel, label: str | None) -> int | None:
    """A class index from `label` (an index or a class name as people type it); None when no
    label is given (random labels)."""
    if label is None:
        return None
    if not spec.conditional or spec.num_classes is None:
        raise InvalidParameter(f"model {spec.name} is unconditional: it takes no label", "label")
    text = label.strip()
    if _INDEX.fullmatch(text):
        digits = text.lstrip("+-").lstrip("0") or "0"
        index = int(text) if len(digits) <= _MAX_INDEX_DIGITS else None
        if index is not None and 0 <= index < spec.num_classes:
            return index
        shown = text if len(text) <= _MAX_ECHO else f"{text[:_MAX_ECHO]}…"
        raise InvalidParameter(
            f"label {shown} is out of range 0..{spec.num_classes - 1} of model {spec.name}",
            "label",
        )
    if spec.class_names and (found := class_keys(spec.class_names).get(_key(text))) is not None:
        return found
    shown = repr(text if len(text) <= _MAX_ECHO else f"{text[:_MAX_ECHO]}…")
    raise InvalidParameter(
        f"unknown label {shown} of model {spec.name}; give {_known(spec)}", "label"
    )
