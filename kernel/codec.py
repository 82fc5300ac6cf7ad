"""One declarative definition per message: msgspec Structs decode, refuse and describe themselves.

A wire message (an MQTT payload, a signalling envelope) or an HTTP body is written once, as a
``msgspec.Struct`` with ``forbid_unknown_fields=True`` and ``Annotated[..., msgspec.Meta(...)]``
constraints. From that one definition come the decoder (:func:`decode` for bytes on the hot path,
:func:`convert` for a JSON object already read), the stable error codes and field paths of
:class:`CodecError`, and the JSON Schema published in ``/api/openapi.json`` (:func:`schema`).

Error codes (``CodecError.reason``), shared by MQTT, signalling and HTTP:

============== ==========================================================================
bad_encoding   the bytes are not UTF-8
bad_json       not valid JSON, or not a JSON object where a message must be one
unknown_field  a field the message does not define (a typo never silently drops a value)
missing_field  a required field is absent
wrong_type     a value of the wrong JSON type (``true`` is not a number, ``1.0`` not an int)
out_of_range   a number or length outside its bounds
bad_value      a string outside its enumeration or pattern, or a rule of the message
============== ==========================================================================

``CodecError.field`` is the path of the offending value (``checks[0].at``), ``""`` for the whole
message. Values never appear in the error text, so an SDP or a password cannot leak into a log. A
rule of a message checked in ``__post_init__`` may raise :class:`CodecError` itself: its ``reason``
is kept and its ``field``, relative to the Struct, is joined to the Struct's path. msgspec was
chosen over pydantic v2 by measurement on the MQTT hot path (``python -m bench.codecs``).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

#: End a ``Meta(pattern=...)`` with this, not ``$``: msgspec matches with ``re.search``, and
#: Python's ``$`` also matches before a final newline (``"cam-1\n"`` would pass as an id).
END = r"$(?!\n)"

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED = re.compile(r"^Object (?P<what>missing required|contains unknown) field `(?P<name>[^`]+)`")
_RANGE = re.compile(r"^Expected `[a-z]+` (?:of length )?(?:>=|<=|>|<|\d)|out of range")


class CodecError(ValueError):
    """A message breaks its definition. ``reason`` is a stable code, ``field`` a path."""

    def __init__(self, reason: str, field: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.field = field
        self.detail = detail


def decode(raw: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode ``raw`` with a prebuilt ``msgspec.json.Decoder`` (build one per type, once)."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as e:
        raise _refusal(str(e), e.__cause__) from None
    except RecursionError:  # JSON nested thousands deep, into an ``Any`` field
        raise CodecError("bad_json", "", "the message is nested too deeply") from None
    except msgspec.DecodeError:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CodecError("bad_encoding", "", "the message is not UTF-8") from None
        raise CodecError("bad_json", "", "the message is not valid JSON") from None


def convert(obj: Any, kind: type[T]) -> T:
    """Convert a JSON value already read (``json.loads``) to ``kind``, strictly."""
    try:
        return msgspec.convert(obj, kind, strict=True)
    except msgspec.ValidationError as e:
        raise _refusal(str(e), e.__cause__) from None


def encode(value: Any) -> bytes:
    """Compact JSON of a Struct (fields left at ``None`` are omitted where the Struct says so)."""
    return msgspec.json.encode(value)


def schema(kind: Any) -> dict[str, Any]:
    """The JSON Schema of ``kind`` with every ``$ref`` inlined, for an OpenAPI request body."""
    doc = msgspec.json.schema(kind)
    defs = doc.pop("$defs", {})
    return _inline(doc, defs)  # type: ignore[no-any-return]


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = _inline(defs[ref.removeprefix("#/$defs/")], defs)
            rest = {k: _inline(v, defs) for k, v in node.items() if k != "$ref"}
            return {**target, **rest}
        return {k: _inline(v, defs) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _refusal(message: str, cause: BaseException | None = None) -> CodecError:
    """Turn msgspec's ValidationError text into a stable reason and a field path."""
    at = _AT.search(message)
    path = at.group("path").lstrip(".") if at else ""
    if isinstance(cause, CodecError):  # a rule raised in __post_init__, naming its own field
        field = ".".join(p for p in (path, cause.field) if p).replace(".[", "[")
        return CodecError(cause.reason, field, cause.detail)
    text = message[: at.start()] if at else message
    named = _NAMED.match(text)
    if named:
        name = named.group("name")
        field = f"{path}.{name}" if path else name
        if named.group("what") == "missing required":
            return CodecError("missing_field", field, f"missing field {field!r}")
        return CodecError("unknown_field", field, f"unknown field {field!r}")
    where = path or "the message"
    if text.startswith("Expected `object`, got") and not path:
        return CodecError("bad_json", "", "the message must be a JSON object")
    if _RANGE.search(text):
        return CodecError("out_of_range", path, f"{where}: {text}")
    if text.startswith("Expected `") and ", got `" in text:
        return CodecError("wrong_type", path, f"{where}: {text}")
    # Invalid enum value, a regex that does not match, or a rule raised in __post_init__. The
    # text of an enum refusal quotes the value; keep only the kind of problem.
    if text.startswith("Invalid enum value"):
        return CodecError("bad_value", path, f"{where}: not one of the allowed values")
    if "matching regex" in text:
        return CodecError("bad_value", path, f"{where}: does not have the required form")
    return CodecError("bad_value", path, f"{where}: {text}")  # our own rule's words, no value
