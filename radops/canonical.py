"""Canonical JSON of call arguments, and the hash that names implicit outputs.

The same call must produce the same bytes on any machine and any Python >= 3.10, so only values
with one obvious JSON form are accepted: str, int, float (finite), bool, None, lists and tuples,
dicts with str keys, plus :class:`pathlib.PurePath` (as its POSIX string) and :class:`enum.Enum`
(as its value). Anything else is an error naming the parameter: a silent ``repr()`` fallback
would change with memory addresses and make two different calls collide or one call miss.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from radops.errors import RadopsError

__all__ = [
    "IMPLICIT_UID_VERSION",
    "ParameterError",
    "call_digest",
    "canonical_json",
    "to_json_value",
]

IMPLICIT_UID_VERSION = 1  # enters the hash: bump it only if the hashed content ever changes
MAX_DEPTH = 100


class ParameterError(RadopsError, TypeError):
    """A parameter of a ``file_creator`` call cannot be recorded as canonical JSON."""


def to_json_value(
    value: Any,
    name: str,
    *,
    file_hook: Callable[[Any], Any] | None = None,
    _depth: int = 0,
) -> Any:
    """Convert ``value`` to plain JSON data, or raise :class:`ParameterError` naming ``name``.

    ``file_hook`` turns radops ``File`` objects (or anything else the caller recognises) into
    JSON; it returns ``NotImplemented`` for values it does not handle.
    """
    if _depth > MAX_DEPTH:
        root = name.split("[", 1)[0]  # the argument's own name, not a path 100 levels long
        raise ParameterError(f"parameter {root!r} is nested more than {MAX_DEPTH} levels deep")
    if file_hook is not None:
        converted = file_hook(value)
        if converted is not NotImplemented:
            return converted
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return to_json_value(value.value, name, file_hook=file_hook, _depth=_depth + 1)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParameterError(f"parameter {name!r} is {value!r}, which JSON cannot represent")
        return float(value)
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, (list, tuple)):
        return [
            to_json_value(item, f"{name}[{i}]", file_hook=file_hook, _depth=_depth + 1)
            for i, item in enumerate(value)
        ]
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ParameterError(
                    f"parameter {name!r} has a key {key!r} of type {type(key).__name__}: "
                    "only str keys have a canonical JSON form"
                )
            result[key] = to_json_value(
                item, f"{name}[{key!r}]", file_hook=file_hook, _depth=_depth + 1
            )
        return result
    raise ParameterError(
        f"parameter {name!r} is a {type(value).__module__}.{type(value).__qualname__}, which "
        "has no canonical JSON form: pass str, int, float, bool, None, lists, dicts with str "
        "keys, paths or enums (or save the object as a data-lake File and pass that)"
    )


def canonical_json(value: Any) -> str:
    """The canonical JSON text of plain JSON data: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def call_digest(module: str, function: str, arguments: Mapping[str, Any], salt: str = "") -> str:
    """sha256 (hex) of a call: function module and name, salt, and canonical arguments.

    ``arguments`` maps parameter names to plain JSON data in which input files appear as
    ``{"radops.File": uid}``, so both the parameters and the input uids enter the hash, in
    the order of the function's signature.
    """
    payload = canonical_json(
        {
            "v": IMPLICIT_UID_VERSION,
            "module": module,
            "function": function,
            "salt": salt,
            # A list of [name, value] pairs keeps the signature's order (a JSON object would be
            # sorted by name).
            "arguments": [[name, value] for name, value in arguments.items()],
        }
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
