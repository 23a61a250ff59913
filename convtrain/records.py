"""The JSON files convtrain writes and reads back, each a pydantic model (a Record).

`Record.read(path)` turns a file that is not JSON, or not what convtrain wrote (a key missing,
a value of another type or out of range, a foreign file), into one ConvtrainError line naming
the file, the field, what was expected and what was received. `write` is atomic. Each record is
defined beside the code that owns it (TrainState in convtrain.train.state, Split in
convtrain.data.split, ...); the run directory's are reached through RunDir.read and RunDir.write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from convtrain.errors import ConvtrainError
from convtrain.io import atomic_write_text
from convtrain.safeload import MAX_JSON_BYTES, check_json_depth, read_bounded

R = TypeVar("R", bound="Record")

# What a value of each pydantic error type should have been, in words.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "finite_number": "a finite number",
    "none_required": "null",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


class RecordError(ConvtrainError):
    """A record file that is missing, not JSON, or not what convtrain wrote: one line."""


class Record(BaseModel):
    """A file convtrain writes and reads back; FILE is its path inside a run directory."""

    model_config = ConfigDict(strict=True, extra="ignore")
    FILE: ClassVar[str] = ""
    MISSING: ClassVar[str] = "missing from the run directory"

    @classmethod
    def read(cls: type[R], path: str | Path) -> R:
        path = Path(path)
        try:
            text = read_bounded(path, MAX_JSON_BYTES, "a JSON file")  # within the budget
        except FileNotFoundError:
            raise RecordError(f"{path}: {cls.MISSING}") from None
        except OSError as exc:
            raise RecordError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
        except ConvtrainError as exc:  # too large, or not a regular file
            raise RecordError(exc.lines()[0]) from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls: type[R], text: str | bytes, source: str) -> R:
        """The record in `text` (JSON); `source` names it in the error."""
        try:
            check_json_depth(
                text.decode("utf-8", "replace") if isinstance(text, bytes) else text, source
            )
        except ConvtrainError as exc:
            raise RecordError(exc.lines()[0]) from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise RecordError(f"{source}: {describe(exc)}") from None

    def dumps(self) -> str:
        """The file's text: indented JSON, keys in the order the model declares them."""
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"

    def write(self, path: str | Path) -> None:
        atomic_write_text(path, self.dumps())


def field_path(loc: tuple[Any, ...]) -> str:
    """('history', 1, 'epoch') -> 'history[1].epoch'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _received(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _expected(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "literal_error":
        return "one of " + ctx["expected"].replace("'", "").replace(" or ", ", ")
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"a number {_BOUNDS[kind]} {bound}"
    if kind == "too_short":
        return f"at least {ctx['min_length']} items"
    return _EXPECTED.get(kind, error["msg"].removeprefix("Input should be ").lower())


def _union_tag(loc: tuple[Any, ...]) -> bool:
    """Whether the location ends in the tag pydantic gives a union's member ('float', 'Model')."""
    tag = loc[-1] if loc else None
    return isinstance(tag, str) and (
        tag in ("float", "int", "str", "bool", "none") or "[" in tag or tag[:1].isupper()
    )


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error, in one line (keys missing together in one)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = field_path(first["loc"])
    prefix = f"{where}: " if where else ""
    kind = first["type"]
    if kind == "json_invalid":
        return f"expected JSON, received invalid text ({first['ctx']['error']})"
    if kind == "value_error":
        return prefix + first["msg"].removeprefix("Value error, ")
    if kind == "missing":
        parent = first["loc"][:-1]
        keys = [
            str(e["loc"][-1]) for e in errors if e["type"] == "missing" and e["loc"][:-1] == parent
        ]
        at = f"{field_path(parent)}: " if parent else ""
        listed = ", ".join(keys)
        return f"{at}expected the key{'s' if len(keys) > 1 else ''} {listed}, received none"
    if kind in ("model_type", "model_attributes_type", "dict_type") and not where:
        return f"expected a JSON object, received {type(first['input']).__name__}"
    members = [e for e in errors if e["loc"][:-1] == first["loc"][:-1] and _union_tag(e["loc"])]
    if len(members) > 1:
        # A union's members each report the value: one line listing what each accepts.
        where = field_path(first["loc"][:-1])
        accepted = " or ".join(dict.fromkeys(_expected(e) for e in members))
        return f"{where}: expected {accepted}, received {_received(first['input'])}"
    return f"{prefix}expected {_expected(first)}, received {_received(first['input'])}"
