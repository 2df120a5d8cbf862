"""A JSON request body read strictly: one UTF-8 JSON text as RFC 8259 defines it, nothing more.

Python's ``json`` is lenient where two readers of one body could disagree, or where the value
cannot go further: given bytes it guesses UTF-16 and UTF-32 and lets UTF-8-encoded surrogates
through; it keeps the last of repeated keys (another reader may keep the first); it reads
``NaN`` and ``Infinity``, which JSON does not have; and it lets ``"\\ud800"`` (a lone surrogate)
through, which no database stores and no UTF-8 answer can echo. Each is refused with a
``BadRequest`` naming it, as are integers longer than Python converts (4,300 digits).
"""

from __future__ import annotations

import json
import re
from typing import Any

from issuer.errors import BadRequest

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise BadRequest(f"the request body repeats the key(s) {', '.join(map(repr, repeated[:5]))} in one object")
    return dict(pairs)


def _constant(name: str) -> Any:
    raise BadRequest(f"the request body holds {name}, which is not a JSON number")


def _refuse_lone_surrogates(payload: Any) -> None:
    pending = [payload]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                raise BadRequest("the request body holds a lone surrogate escape (\\ud800-\\udfff); send valid Unicode")
        elif isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def load_object(raw: bytes) -> dict[str, Any]:
    """The JSON object ``raw`` holds; anything else is a ``BadRequest`` saying what it is."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the request body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        payload = json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise BadRequest("the request body is nested too deeply") from None
    except ValueError:  # an integer beyond the 4,300 digits Python converts
        raise BadRequest("the request body holds a number of more than 4,300 digits") from None
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object")
    _refuse_lone_surrogates(payload)
    return payload
