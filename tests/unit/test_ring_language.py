"""The brukare's language reaches the unit's screen: ``ring.lang`` (issue 19).

The care record's language tag picks one of the screen's languages (Swedish, English, Finnish);
the ``ring`` the backend sends carries it; a ring with any other ``lang`` is refused.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from consent.model import Purpose as GP
from devices import envelope as env
from devices import topics as t
from devices.errors import PayloadError
from services.signalling.fakes import FakeSessionStore
from tests.unit.test_signalling_machine import OPERATOR, PHONE_ID, ask, running


@pytest.mark.parametrize(
    ("tag", "lang"),
    [
        ("sv", t.ScreenLanguage.SV),
        ("fi", t.ScreenLanguage.FI),
        ("fi-FI", t.ScreenLanguage.FI),
        ("FI", t.ScreenLanguage.FI),
        ("en_GB", t.ScreenLanguage.EN),
        ("sv-FI", t.ScreenLanguage.SV),  # Finland Swedish is Swedish
        ("se", t.ScreenLanguage.SV),  # Northern Sami: not on the screen yet, Swedish
        ("", t.ScreenLanguage.SV),
        (None, t.ScreenLanguage.SV),  # bound to nobody: the default
    ],
)
def test_the_record_language_picks_a_screen_language(tag: str | None, lang: str) -> None:
    assert t.ScreenLanguage.of(tag) is lang


@pytest.mark.parametrize("lang", list(t.ScreenLanguage))
def test_a_ring_carries_its_language(lang: t.ScreenLanguage) -> None:
    ring = t.Ring("s-12345678", caller="Karin Berg", lang=lang)
    wire = ring.command("c1").encode()
    assert json.loads(wire)["lang"] == lang.value
    assert t.decode_ring(t.decode_command(wire)) == ring


@pytest.mark.parametrize("bad", ["de", "FI", "", "sv-SE", "finnish", 7])
def test_a_ring_in_an_unknown_language_is_refused(bad: object) -> None:
    payload = json.dumps({"id": "c1", "op": "ring", "session_id": "s-12345678", "lang": bad})
    with pytest.raises(PayloadError) as err:
        t.decode_ring(t.decode_command(payload.encode()))
    assert err.value.reason in {"bad_value", "wrong_type"}
    assert err.value.field == "lang"


@pytest.mark.parametrize(("record", "sent"), [("fi", "fi"), ("en-GB", "en"), (None, "sv")])
async def test_signalling_rings_in_the_brukares_language(record: str | None, sent: str) -> None:
    store = FakeSessionStore()
    if record is not None:
        store.languages[PHONE_ID] = record
    async with running(store) as rig, rig.sig.connect(OPERATOR) as conn:
        rig.gate.allow(PHONE_ID, GP.VIDEO_CALL)
        rig.gate.allow(PHONE_ID, GP.CAMERA_CHECK)
        granted = await ask(rig, conn, env.Request("s-lang-001", PHONE_ID, env.Purpose.CALL))
        assert isinstance(granted, env.Granted)
        for _ in range(10):
            if rig.commands.ops(PHONE_ID):
                break
            await asyncio.sleep(0)
        rings = [a for d, op, a in rig.commands.sent if op is t.CommandOp.RING]
    assert [r["lang"] for r in rings] == [sent]
