"""Wire codecs: decoded messages per second, msgspec Structs against pydantic v2 and the old code.

A realistic mix of what the backend decodes (per 100 messages: 40 ``health``, 10 ``status``, 5
``event``, 5 ``meta`` on MQTT; 20 ``candidate``, 15 ``video`` and 5 ``offer`` with a 3 KB SDP on
the signalling channel) is decoded, every message checked in full, by three implementations of
the same definitions:

- ``msgspec``: ``devices.topics`` / ``devices.envelope`` as they are (msgspec Structs through
  ``kernel.codec``), what the service runs;
- ``pydantic``: the same definitions as pydantic v2 models (``bench/baselines/pydantic_wire.py``:
  ``extra="forbid"``, strict, ``model_validate_json`` / a discriminated ``TypeAdapter``);
- ``handwritten``: the hand-written decoders they replaced (``bench/baselines/handwritten_wire.py``,
  a frozen copy), the baseline.

The three run interleaved, round after round, in one process; each figure is the best round (the
least disturbed by the other processes of a shared machine). Before timing, every implementation
decodes the mix once and must agree with the others on every message.

    .venv/bin/python -m bench.codecs [--rounds 7] [--messages 20000] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec
import pydantic

from bench.baselines import handwritten_wire as hw
from bench.baselines import pydantic_wire as pw
from devices import envelope as env
from devices import topics as t

RESULTS = Path(__file__).parent / "results"
DEVICE = "cam-0042"
SESSION = "s-7f3a9c2e4b1d"

Decoder = Callable[[bytes], object]

SDP = "\r\n".join(
    [
        "v=0",
        "o=- 3912398453 2 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=msid-semantic:WMS *",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 102",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Vq3f",
        "a=ice-pwd:4Nn2c1uE7rP0QXo9WkS8yZ5b",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 " + ":".join(f"{i * 7 % 256:02X}" for i in range(32)),
        "a=setup:actpass",
        "a=mid:0",
        "a=recvonly",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        *[
            line
            for pt, codec in ((96, "VP8"), (98, "VP9"), (100, "H264"), (102, "AV1"))
            for line in (
                f"a=rtpmap:{pt} {codec}/90000",
                f"a=rtcp-fb:{pt} goog-remb",
                f"a=rtcp-fb:{pt} transport-cc",
                f"a=rtcp-fb:{pt} ccm fir",
                f"a=rtcp-fb:{pt} nack",
                f"a=rtcp-fb:{pt} nack pli",
                f"a=rtpmap:{pt + 1} rtx/90000",
                f"a=fmtp:{pt + 1} apt={pt}",
            )
        ],
        "a=fmtp:100 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:toffset",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:3 urn:3gpp:video-orientation",
        "a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=extmap:5 urn:ietf:params:rtp-hdrext:sdes:mid",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:Vq3f",
        "a=ice-pwd:4Nn2c1uE7rP0QXo9WkS8yZ5b",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 " + ":".join(f"{i * 7 % 256:02X}" for i in range(32)),
        "a=setup:actpass",
        "a=mid:1",
        "a=recvonly",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:13 CN/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:126 telephone-event/8000",
        "a=extmap:1 urn:ietf:params:audio-level",
        "a=extmap:5 urn:ietf:params:rtp-hdrext:sdes:mid",
        *[
            f"a=candidate:{842163049 + i} 1 udp {2122260223 - i} 192.168.1.{5 + i} {50000 + i}"
            " typ host generation 0 network-id 1"
            for i in range(4)
        ],
        "a=end-of-candidates",
        "",
    ]
)

MQTT: dict[str, bytes] = {
    "health": (
        b'{"uptime_s":86412.5,"battery_pct":87.0,"shutter":"open","tamper":false,'
        b'"link":0.93,"ts":1765000000.123}'
    ),
    "status": b'{"state":"online","session":1765000000123,"ts":1765000000.123}',
    "event": b'{"type":"privacy_switch","ts":1765000000.456,"session_id":"s-7f3a9c2e4b1d"}',
    "meta": (
        b'{"kind":"camera","fw":"sim-1.4.2","caps":["video","privacy_shutter","substream"],'
        b'"video":{"w":640,"h":480,"fps":15.0}}'
    ),
}
ENVELOPES: dict[str, bytes] = {
    "candidate": json.dumps(
        {
            "type": "candidate",
            "session_id": SESSION,
            "candidate": "candidate:842163049 1 udp 1677729535 203.0.113.7 61651 typ srflx"
            " raddr 192.168.1.5 rport 61651 generation 0 ufrag Vq3f network-cost 999",
            "sdp_mid": "0",
            "sdp_mline_index": 0,
        },
        separators=(",", ":"),
    ).encode(),
    "video": b'{"type":"video","session_id":"s-7f3a9c2e4b1d","frames":1234}',
    "offer": json.dumps(
        {"type": "offer", "session_id": SESSION, "sdp": SDP}, separators=(",", ":")
    ).encode(),
}
#: Messages per 100 of each kind.
MIX = {
    "health": 40,
    "status": 10,
    "event": 5,
    "meta": 5,
    "candidate": 20,
    "video": 15,
    "offer": 5,
}

IMPLEMENTATIONS: dict[str, dict[str, Decoder]] = {
    "msgspec": {
        "health": lambda p: t.decode_health(p, DEVICE),
        "status": lambda p: t.decode_status(p, DEVICE),
        "event": lambda p: t.decode_event(p, DEVICE),
        "meta": lambda p: t.decode_meta(p, DEVICE),
        **dict.fromkeys(ENVELOPES, lambda p: env.decode(p, allowed=env.CLIENT_TYPES)),
    },
    "pydantic": {
        "health": lambda p: pw.decode_payload(p, pw.Health, DEVICE),
        "status": lambda p: pw.decode_payload(p, pw.Status, DEVICE),
        "event": lambda p: pw.decode_payload(p, pw.Event, DEVICE),
        "meta": lambda p: pw.decode_payload(p, pw.Meta, DEVICE),
        **dict.fromkeys(ENVELOPES, lambda p: pw.decode_envelope(p, allowed=env.CLIENT_TYPES)),
    },
    "handwritten": {
        "health": lambda p: hw.decode_health(p, DEVICE),
        "status": lambda p: hw.decode_status(p, DEVICE),
        "event": lambda p: hw.decode_event(p, DEVICE),
        "meta": lambda p: hw.decode_meta(p, DEVICE),
        **dict.fromkeys(
            ENVELOPES,
            lambda p: hw.decode_envelope(p, allowed=frozenset(hw.CLIENT_TYPES)),
        ),
    },
}
BASELINE = "handwritten"


def counts(n: int) -> dict[str, int]:
    """How many of each kind ``n`` messages hold, in the proportions of :data:`MIX`."""
    return {kind: n * share // sum(MIX.values()) for kind, share in MIX.items()}


def _plain(value: object) -> dict[str, Any]:
    """A decoded value as plain JSON data, whichever library made it (to check they agree)."""
    if isinstance(value, pydantic.BaseModel):
        out: dict[str, Any] = value.model_dump(mode="json")
    elif isinstance(value, msgspec.Struct):
        out = msgspec.json.decode(msgspec.json.encode(value))
    else:
        out = json.loads(json.dumps(dataclasses.asdict(value)))  # type: ignore[call-overload]
    return {k: v for k, v in out.items() if v not in (None, [])}


def agree() -> None:
    """Every implementation decodes every kind to the same values."""
    for kind, payload in (MQTT | ENVELOPES).items():
        seen = {name: _plain(impl[kind](payload)) for name, impl in IMPLEMENTATIONS.items()}
        first = seen["msgspec"]
        for name, value in seen.items():
            if value != first:
                raise AssertionError(f"{name} decodes {kind} differently: {value} != {first}")


def _round(decoders: dict[str, Decoder], n: dict[str, int]) -> dict[str, float]:
    """Seconds each kind's ``n[kind]`` messages take to decode, one batch per kind (so reading
    the clock costs nothing measurable)."""
    spent: dict[str, float] = {}
    payloads = MQTT | ENVELOPES
    for kind, count in n.items():
        decode, batch = decoders[kind], [payloads[kind]] * count
        start = time.perf_counter()
        for payload in batch:
            decode(payload)
        spent[kind] = time.perf_counter() - start
    return spent


def run(rounds: int = 7, messages: int = 20_000, quick: bool = False) -> dict[str, Any]:
    if quick:
        rounds, messages = 2, 2_000
    agree()
    n = counts(messages)
    messages = sum(n.values())
    best: dict[str, dict[str, float]] = {
        name: dict.fromkeys(MIX, float("inf")) for name in IMPLEMENTATIONS
    }
    for _ in range(rounds):
        for name, decoders in IMPLEMENTATIONS.items():
            for kind, s in _round(decoders, n).items():
                best[name][kind] = min(best[name][kind], s)
    per_s = {name: round(messages / sum(spent.values()), 1) for name, spent in best.items()}
    per_kind = {
        kind: {name: round(n[kind] / best[name][kind], 1) for name in IMPLEMENTATIONS}
        for kind in MIX
    }
    mqtt_kinds = [k for k in MIX if k in MQTT]
    mqtt_per_s = {
        name: round(sum(n[k] for k in mqtt_kinds) / sum(spent[k] for k in mqtt_kinds), 1)
        for name, spent in best.items()
    }
    winner = max(per_s, key=per_s.__getitem__)
    result = {
        "messages": messages,
        "rounds": rounds,
        "mix_per_100": MIX,
        "offer_sdp_bytes": len(SDP.encode()),
        "msgs_per_s": per_s,
        "mqtt_msgs_per_s": mqtt_per_s,
        "per_kind_msgs_per_s": per_kind,
        "msgspec_msgs_per_s": per_s["msgspec"],
        "pydantic_msgs_per_s": per_s["pydantic"],
        "handwritten_msgs_per_s": per_s["handwritten"],
        "msgspec_over_handwritten_ratio": round(per_s["msgspec"] / per_s[BASELINE], 2),
        "pydantic_over_handwritten_ratio": round(per_s["pydantic"] / per_s[BASELINE], 2),
        "msgspec_over_pydantic_ratio": round(per_s["msgspec"] / per_s["pydantic"], 2),
        "mqtt_msgspec_over_pydantic_ratio": round(
            mqtt_per_s["msgspec"] / mqtt_per_s["pydantic"], 2
        ),
        "winner": winner,
        "versions": {
            "python": platform.python_version(),
            "msgspec": version("msgspec"),
            "pydantic": version("pydantic"),
        },
        "note": "one process, one core; every message fully validated (and the envelope's SDP "
        "and candidate grammar checked) by each implementation; best of the rounds; baseline: "
        "the hand-written decoders the Structs replaced",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "codecs.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--messages", type=int, default=20_000, help="messages per round")
    p.add_argument("--quick", action="store_true", help="a smoke run of a second")
    args = p.parse_args()
    result = run(args.rounds, args.messages, args.quick)
    print(json.dumps(result, indent=2))
    print(
        "\n".join(
            f"{name:>12}: {value:>12,.0f} msg/s  ({value / result['msgs_per_s'][BASELINE]:.2f} x"
            f" {BASELINE})"
            for name, value in result["msgs_per_s"].items()
        )
    )


if __name__ == "__main__":
    main()
