"""kernel.codec: one definition decodes, refuses with a stable reason and path, and describes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec
import pytest

from kernel.codec import CodecError, convert, decode, encode, schema


class State(StrEnum):
    ON = "on"
    OFF = "off"


class Item(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    at: Annotated[str, msgspec.Meta(pattern=r"^\d\d:\d\d$")]


class Message(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    state: State
    session: Annotated[int, msgspec.Meta(ge=0, le=2**53)]
    name: Annotated[str, msgspec.Meta(max_length=8)] = "x"
    ts: float | None = None
    items: tuple[Item, ...] = ()

    def __post_init__(self) -> None:
        if self.state is State.OFF and self.items:
            raise ValueError("a message that is off lists no items")


DECODER = msgspec.json.Decoder(Message)


def test_a_valid_message_decodes_and_encodes_back() -> None:
    m = decode(b'{"state":"on","session":3,"items":[{"at":"22:00"}]}', DECODER)
    assert m == Message(State.ON, 3, items=(Item("22:00"),))
    assert decode(encode(m), DECODER) == m
    assert encode(Message(State.ON, 1)) == b'{"state":"on","session":1}'


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b"\xff\xfe", "bad_encoding", ""),
        (b"{bad", "bad_json", ""),
        (b'{"state":"on","session":1,"ts":NaN}', "bad_json", ""),
        (b"[1]", "bad_json", ""),
        (b'{"state":"on"}', "missing_field", "session"),
        (b'{"state":"on","session":1,"extra":1}', "unknown_field", "extra"),
        (
            b'{"state":"on","session":1,"items":[{"at":"22:00","x":1}]}',
            "unknown_field",
            "items[0].x",
        ),
        (b'{"state":"on","session":1,"items":[{}]}', "missing_field", "items[0].at"),
        (b'{"state":"on","session":true}', "wrong_type", "session"),
        (b'{"state":"on","session":1.0}', "wrong_type", "session"),
        (b'{"state":"on","session":-1}', "out_of_range", "session"),
        (b'{"state":"on","session":100000000000000000000000}', "out_of_range", "session"),
        (b'{"state":"on","session":1,"ts":1e400}', "out_of_range", "ts"),
        (b'{"state":"on","session":1,"name":"abcdefghi"}', "out_of_range", "name"),
        (b'{"state":"maybe","session":1}', "bad_value", "state"),
        (b'{"state":"on","session":1,"items":[{"at":"9pm"}]}', "bad_value", "items[0].at"),
        (b'{"state":"off","session":1,"items":[{"at":"22:00"}]}', "bad_value", ""),
    ],
)
def test_refusals_carry_a_stable_reason_and_the_field_path(
    raw: bytes, reason: str, field: str
) -> None:
    with pytest.raises(CodecError) as e:
        decode(raw, DECODER)
    assert (e.value.reason, e.value.field) == (reason, field)


def test_refusals_never_quote_the_value() -> None:
    with pytest.raises(CodecError) as e:
        decode(b'{"state":"s3cret-value","session":1}', DECODER)
    assert "s3cret" not in str(e.value)


def test_convert_refuses_like_decode() -> None:
    assert convert({"state": "on", "session": 1}, Message) == Message(State.ON, 1)
    with pytest.raises(CodecError) as e:
        convert({"state": "on", "session": "1"}, Message)
    assert (e.value.reason, e.value.field) == ("wrong_type", "session")


def test_the_schema_is_inlined_and_closed() -> None:
    doc = schema(Message)
    assert "$ref" not in repr(doc)
    assert doc["additionalProperties"] is False
    assert doc["required"] == ["state", "session"]
    assert doc["properties"]["state"]["enum"] == ["off", "on"] or doc["properties"]["state"][
        "enum"
    ] == ["on", "off"]
    item = doc["properties"]["items"]["items"]
    assert item["properties"]["at"]["pattern"] == r"^\d\d:\d\d$"


class Slot(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise CodecError("inverted", "end", "end must come after start")


class Day(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    slots: tuple[Slot, ...]


def test_a_rule_raised_as_a_codec_error_keeps_its_reason_and_names_its_field() -> None:
    with pytest.raises(CodecError) as e:
        convert({"slots": [{"start": 1, "end": 2}, {"start": 3, "end": 3}]}, Day)
    assert (e.value.reason, e.value.field) == ("inverted", "slots[1].end")
    with pytest.raises(CodecError) as e:
        decode(b'{"start": 5, "end": 1}', msgspec.json.Decoder(Slot))
    assert (e.value.reason, e.value.field, e.value.detail) == (
        "inverted",
        "end",
        "end must come after start",
    )


class Pair(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    p: tuple[int, int]


def test_a_fixed_length_array_of_another_length_is_out_of_range() -> None:
    with pytest.raises(CodecError) as e:
        convert({"p": [1, 2, 3]}, Pair)
    assert (e.value.reason, e.value.field) == ("out_of_range", "p")
