"""Reading request bodies for every route: one JSON object, typed getters that name the field.

Every problem raises :class:`~kernel.errors.InvalidInput` (422) naming the field, or
:class:`BodyError` (400) when the body is not a UTF-8 JSON object, or
:class:`~kernel.errors.UnsupportedMediaType` (415) when a body is sent as anything but
``application/json``. A string anywhere in the object (a key or a value) holding a lone UTF-16
surrogate (``"\\udfff"``: valid JSON, but no Unicode text) is refused with 422 naming its field
path (``checks[0].note``), never its value; only fields a route names as ``secrets`` (a password)
keep such a string, so that a login with it is checked, fails and is audited like any other
wrong password. Unknown fields are refused, so a typo never silently drops a value.

Instants are ISO 8601; one written without an offset is read as local time in the brukare's
zone, and refused if that local time does not exist or occurs twice (the DST nights).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from datetime import datetime, time, tzinfo
from enum import StrEnum
from typing import Any, TypeVar

from aiohttp import web

from kernel.errors import BodyError, InvalidInput, UnsupportedMediaType
from kernel.values import Problem, is_id, resolve_local

E = TypeVar("E", bound=StrEnum)
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_MISSING = object()
JSON = "application/json"


async def read_object(
    request: web.Request, *, allow_empty: bool = True, secrets: Collection[str] = ()
) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}`` where ``allow_empty``, else 400.

    ``secrets`` names top-level fields (a password) whose string may hold lone surrogates: it
    is passed on unread, for the route to check (and fail) as any other wrong value."""
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
    field = unpaired_surrogate_at(
        {k: v for k, v in value.items() if k not in secrets or not isinstance(v, str)}
    )
    if field is not None:
        raise InvalidInput(
            field, "invalid_text", f"{field} holds an unpaired UTF-16 surrogate, which is no text"
        )
    return value


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # json.loads joins valid pairs: what is left is a lone surrogate
        return False
    return True


def unpaired_surrogate_at(value: object, path: str = "") -> str | None:
    """The field path (``a.b[2].c``) of the first string in ``value`` with a lone surrogate, or
    ``None``. A bad key is named by its parent's path (its own name is not text to show)."""
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


def refuse_unknown(data: dict[str, Any], known: Collection[str]) -> None:
    """Raise 422 ``unknown_field`` naming the first field of ``data`` not in ``known`` (for
    handlers that read a body without :class:`Body`)."""
    extra = sorted(set(data) - set(known))
    if extra:
        raise InvalidInput(extra[0], "unknown_field", f"{extra[0]} is not a known field")


def parse_instant(raw: object, field: str, zone: tzinfo) -> datetime:
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


def parse_hhmm(raw: object, field: str) -> time:
    if not isinstance(raw, str) or not _HHMM.match(raw):
        raise InvalidInput(field, "invalid_time", f"{field} must be a local time like 22:30")
    return time.fromisoformat(raw)


class Body:
    """Typed access to a JSON object's fields; :meth:`done` refuses fields nobody read."""

    def __init__(self, data: dict[str, Any], *, prefix: str = "") -> None:
        self._data = data
        self._read: set[str] = set()
        self._prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def _get(self, key: str, *, required: bool) -> Any:
        self._read.add(key)
        value = self._data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise InvalidInput(self._name(key), "required", f"{self._name(key)} is required")
            return None
        return value

    def text(self, key: str, *, max_len: int = 200, required: bool = True) -> str | None:
        value = self._get(key, required=required)
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > max_len or "\x00" in value:
            raise InvalidInput(
                self._name(key), "invalid_text", f"{self._name(key)} is text of at most {max_len}"
            )
        value = value.strip()
        if required and not value:
            raise InvalidInput(self._name(key), "required", f"{self._name(key)} is required")
        return value

    def req_text(self, key: str, *, max_len: int = 200) -> str:
        value = self.text(key, max_len=max_len)
        assert value is not None  # required=True never returns None
        return value

    def identifier(self, key: str, *, required: bool = True) -> str | None:
        value = self._get(key, required=required)
        if value is None:
            return None
        if not is_id(value):
            raise InvalidInput(
                self._name(key),
                "invalid_id",
                f"{self._name(key)} is 1..64 lowercase letters, digits and dashes",
            )
        return str(value)

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self._get(key, required=False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise InvalidInput(
                self._name(key),
                "out_of_range",
                f"{self._name(key)} must be a whole number from {lo} to {hi}",
            )
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, required=False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidInput(self._name(key), "invalid", f"{self._name(key)} is true or false")
        return value

    def enum(self, key: str, kind: type[E], default: E | None = None) -> E:
        value = self._get(key, required=default is None)
        if value is None:
            assert default is not None
            return default
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise InvalidInput(
                self._name(key), "invalid_choice", f"{self._name(key)} is one of: {allowed}"
            ) from None

    def opt_enum(self, key: str, kind: type[E]) -> E | None:
        if self._get(key, required=False) is None:
            return None
        return self.enum(key, kind)

    def instant(self, key: str, zone: tzinfo, default: datetime | None = None) -> datetime | None:
        value = self._get(key, required=False)
        if value is None:
            return default
        return parse_instant(value, self._name(key), zone)

    def hhmm(self, key: str) -> time:
        return parse_hhmm(self._get(key, required=True), self._name(key))

    def objects(self, key: str, *, required: bool = True) -> list[Body]:
        value = self._get(key, required=required)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise InvalidInput(
                self._name(key), "invalid_list", f"{self._name(key)} is a list of objects"
            )
        if len(value) > 100:
            raise InvalidInput(self._name(key), "too_many", f"{self._name(key)} is too long")
        return [Body(v, prefix=f"{self._name(key)}[{i}].") for i, v in enumerate(value)]

    def strings(self, key: str) -> list[str] | None:
        value = self._get(key, required=False)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(
                self._name(key), "invalid_list", f"{self._name(key)} is a list of strings"
            )
        return list(value)

    def done(self) -> None:
        extra = sorted(set(self._data) - self._read)
        if extra:
            name = self._name(extra[0])
            raise InvalidInput(name, "unknown_field", f"{name} is not a known field")
