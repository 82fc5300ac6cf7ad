"""Reading request bodies for every route: one JSON object, decoded into the route's Struct.

A route's body is written once, as a ``msgspec.Struct`` subclassing :class:`Fields` (unknown fields
refused, ``Annotated[..., msgspec.Meta(...)]`` constraints, defaults, ``__post_init__`` for rules
between fields); :func:`read_body` decodes it with :func:`kernel.codec.convert` and the OpenAPI
document publishes :func:`kernel.codec.schema` of the same class, so the two cannot drift.

Every problem raises :class:`~kernel.errors.InvalidInput` (422) naming the field path and the
codec's stable code (``missing_field``, ``unknown_field``, ``wrong_type``, ``out_of_range``,
``bad_value``, or a rule's own), or :class:`BodyError` (400) when the body is not a UTF-8 JSON
object, or :class:`~kernel.errors.UnsupportedMediaType` (415) when a body is sent as anything but
``application/json``. An empty body stands for ``{}`` where every field has a default, and is 400
where one is required. A string anywhere in the object (a key or a value) holding a lone UTF-16
surrogate (``"\\udfff"``: valid JSON, but no Unicode text) or a NUL (which PostgreSQL cannot store)
is refused with 422 ``invalid_text`` naming its field path (``checks[0].note``), never its value;
only fields a route names as ``secrets`` (a password) keep such a string, so that a login with it
is checked, fails and is audited like any other wrong password.

Values that need context stay constrained strings in the Struct (:data:`Id`, :data:`LocalTime`,
:data:`Instant`) and are resolved by the handler: instants are ISO 8601, and one written without an
offset is local time in the brukare's zone, refused if that local time does not exist or occurs
twice (the DST nights), naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from datetime import datetime, time, tzinfo
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web

from kernel import codec
from kernel.errors import BodyError, InvalidInput, UnsupportedMediaType
from kernel.values import Problem, resolve_local

JSON = "application/json"

END = codec.END
"""Ends a pattern: Python's ``$`` also matches before a final newline, JSON Schema's never does."""
_HHMM = rf"^([01][0-9]|2[0-3]):[0-5][0-9]{END}"
Id = Annotated[
    str,
    msgspec.Meta(
        pattern=rf"^[a-z0-9][a-z0-9-]{{0,63}}{END}",
        description="a pseudonymous id: 1..64 of a-z, 0-9 and '-', not starting with '-'",
    ),
]
LocalTime = Annotated[str, msgspec.Meta(pattern=_HHMM, description="a local time like 22:30")]
Instant = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="ISO 8601 date-time; without an offset, local time in the brukare's zone",
    ),
]
NOT_BLANK = r"\S"
"""A pattern for text that must hold more than white space (a name)."""


class Fields(msgspec.Struct, forbid_unknown_fields=True):
    """The base of every request body: a field it does not define is refused, so a typo never
    silently drops a value."""


class NoFields(Fields):
    """No fields: send nothing, or {}."""


S = TypeVar("S", bound=msgspec.Struct)


def has_required_fields(kind: type[msgspec.Struct]) -> bool:
    """Whether ``kind`` has a field without a default (then an empty body is no body)."""
    return any(f.required for f in msgspec.structs.fields(kind))


async def read_body(request: web.Request, kind: type[S], *, secrets: Collection[str] = ()) -> S:
    """The body decoded as ``kind``; 422 names the first bad field (see the module)."""
    data = await read_object(request, allow_empty=not has_required_fields(kind), secrets=secrets)
    try:
        return codec.convert(data, kind)
    except codec.CodecError as e:
        raise InvalidInput(e.field or "body", e.reason, e.detail) from None


async def read_object(
    request: web.Request, *, allow_empty: bool = True, secrets: Collection[str] = ()
) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}`` where ``allow_empty``, else 400.

    ``secrets`` names top-level fields (a password) whose string may hold lone surrogates or NULs:
    it is passed on unread, for the route to check (and fail) as any other wrong value."""
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise BodyError("body is empty; send a JSON object")
    if request.content_type != JSON:
        raise UnsupportedMediaType(f"send the body as {JSON}, not {request.content_type}")
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BodyError("body is not UTF-8") from e
    except (ValueError, RecursionError) as e:  # RecursionError: nested thousands deep
        raise BodyError("body is not valid JSON") from e
    if not isinstance(value, dict):
        raise BodyError("body must be a JSON object")
    field = not_text_at(
        {k: v for k, v in value.items() if k not in secrets or not isinstance(v, str)}
    )
    if field is not None:
        raise InvalidInput(
            field,
            "invalid_text",
            f"{field} holds an unpaired UTF-16 surrogate or a NUL, which is no text",
        )
    return value


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # json.loads joins valid pairs: what is left is a lone surrogate
        return False
    return "\x00" not in value


def not_text_at(value: object, path: str = "") -> str | None:
    """The field path (``a.b[2].c``) of the first string in ``value`` with a lone surrogate or a
    NUL, or ``None``. A bad key is named by its parent's path (its own name is not text to show)."""
    stack: list[tuple[str, object]] = [(path, value)]
    while stack:  # iterative: json.loads already bounded the depth, but no recursion here
        where, item = stack.pop()
        if isinstance(item, str):
            if not _is_text(item):
                return where or "body"
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                if not _is_text(key):
                    return where or "body"
                stack.append((f"{where}.{key}" if where else key, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None


def parse_instant(raw: object, field: str, zone: tzinfo) -> datetime:
    """An ISO 8601 instant; without an offset, local time in ``zone`` (DST gaps and repeats
    refused). 422 naming ``field``."""
    if not isinstance(raw, str):
        raise InvalidInput(field, "invalid_datetime", f"{field} must be an ISO 8601 date-time")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            field, "invalid_datetime", f"{field} must be an ISO 8601 date-time"
        ) from None
    if value.tzinfo is not None:
        return value
    resolved = resolve_local(value, zone, field)
    if isinstance(resolved, Problem):
        raise InvalidInput.of(resolved)
    return resolved


def instant(raw: str | None, field: str, zone: tzinfo) -> datetime | None:
    """:func:`parse_instant` of an optional :data:`Instant` field; ``None`` when absent."""
    return None if raw is None else parse_instant(raw, field, zone)


_HHMM_RE = re.compile(_HHMM)


def parse_hhmm(raw: object, field: str) -> time:
    """A :data:`LocalTime` as a ``time``; 422 naming ``field`` if it is not one."""
    if not isinstance(raw, str) or not _HHMM_RE.match(raw):
        raise InvalidInput(field, "bad_value", f"{field} must be a local time like 22:30")
    return time.fromisoformat(raw)
