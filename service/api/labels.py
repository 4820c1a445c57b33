"""Class labels as people type them: a class index (`7`) or a class name.

Names compare on letters and digits only, ignoring case and the separators space, `-`, `_`
and `/`: `ankle-boot`, `Ankle_Boot`, `ankle boot` and `ankleboot` all name "Ankle boot".
Each `/`-separated part of a name is a short form of it (`t-shirt` or `top` for
"T-shirt/top") unless another class claims the same part. Anything else — `--5`, `²`, a
5000-digit number — is a 422 that lists the classes, never a 500.
"""

import re
from collections.abc import Sequence
from typing import Protocol

from service.errors import InvalidParameter

_SEPARATORS = re.compile(r"[\s\-_/]+")
_INDEX = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: no '²', no '--5'
_MAX_INDEX_DIGITS = 9  # longer numbers are out of range of any model: no int() of 5000 digits
_MAX_ECHO = 40  # characters of an unknown label quoted back in the error


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


def label_name(spec: LabelledModel, index: int | None) -> str | None:
    """The class name of `index`; None without a label or where the model names no classes."""
    if index is None or not spec.class_names:
        return None
    return spec.class_names[index]
