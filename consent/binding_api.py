"""HTTP handlers of the consent slice for two-step device binding (four eyes, and proof from
the device: a video phone's code sent by :data:`BIND_CODE_SENDER`, a camera's button), the gate
and the camera register (routes in :func:`consent.api.routes`). Each decodes its body's Struct
(declared above it), calls the store's port, and shapes the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

import msgspec
import structlog
from aiohttp import web

from consent import api_context as ctx
from consent import records, rules
from consent import register as camera_register
from consent.binding_writes import new_bind_code
from consent.errors import Conflict, InvalidInput, NotFound
from consent.model import BindingAction, BindingConfirmation, BindingProof, BindingRequest, Purpose
from consent.ports import new_id
from kernel.access import caller
from kernel.body import END, Fields, Id, parse_instant, read_body
from kernel.codec import CodecError
from kernel.values import is_id

log = structlog.get_logger("consent.api")


# --- device binding ------------------------------------------------------------------------

SendBindCode = Callable[[str, str, datetime], Awaitable[bool]]
"""Sends a video phone its one-time code to show (``device_id, code, expires_at``); ``True``
when the phone acked it. The composition root gives the MQTT ``bind_code`` command."""
BIND_CODE_SENDER: web.AppKey[SendBindCode] = web.AppKey("consent_bind_code_sender")


async def list_binding_requests(request: web.Request) -> web.Response:
    device_id = request.query.get("device_id")
    found = await ctx.store(request).binding_requests(device_id=device_id)
    return ctx.answer({"requests": [records.request_json(r) for r in found]})


class BindingAsk(Fields):
    """Step one: bind the device to a brukare's home (naming the brukare) or unbind it."""

    action: BindingAction = BindingAction.BIND
    recipient_id: Id | None = None

    def __post_init__(self) -> None:
        if self.action is BindingAction.BIND and self.recipient_id is None:
            raise CodecError("missing_field", "recipient_id", "binding names the brukare")


async def _send_code(request: web.Request, req: BindingRequest, code: str) -> bool:
    """Show the code on the phone; ``False`` (logged) if it cannot be sent or is not acked."""
    send = request.app.get(BIND_CODE_SENDER)
    if send is None or req.code_expires_at is None:
        log.warning("bind_code_not_sent", device_id=req.device_id, reason="no_broker")
        return False
    try:
        acked = await send(req.device_id, code, req.code_expires_at)
    except (OSError, LookupError, TimeoutError) as e:  # offline, unknown, broker gone
        log.warning("bind_code_not_sent", device_id=req.device_id, reason=type(e).__name__)
        return False
    if not acked:
        log.warning("bind_code_not_sent", device_id=req.device_id, reason="refused")
    return acked


async def request_binding(request: web.Request) -> web.Response:
    who = caller(request)
    device_id = request.match_info["device_id"]
    b = await read_body(request, BindingAsk)
    code = new_bind_code()  # kept (hashed) and sent only when the device is a video phone
    req = await ctx.store(request).request_binding(
        request_id=new_id("breq"),
        action=b.action,
        device_id=device_id,
        recipient_id=b.recipient_id,
        actor=who.staff_id,
        at=ctx.now(request),
        code=code,
    )
    body = records.request_json(req)
    if req.proof is BindingProof.CODE:
        body["code_sent"] = await _send_code(request, req, code)
    log.info(
        "binding_requested",
        device_id=device_id,
        action=b.action.value,
        request_id=req.request_id,
        proof=req.proof.value,
    )
    return ctx.answer(body, 201)


BIND_CODE = rf"^[0-9]{{{rules.BIND_CODE_DIGITS}}}{END}"


class Confirmation(Fields):
    """Step two, by a second person: the brukare the request names, the brukare's details as
    the installer on site reads them out (``name``: on the door, or the whole name;
    ``address``: the street address, when the record holds one), and for a video phone the
    ``code`` its screen shows. A camera's proof is its ``bind_button``, pressed after the
    request. Four eyes: the requester cannot confirm (409 ``four_eyes``)."""

    recipient_id: Id
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    address: Annotated[str, msgspec.Meta(max_length=500)] = ""
    code: Annotated[str, msgspec.Meta(pattern=BIND_CODE)] | None = None


async def confirm_binding(request: web.Request) -> web.Response:
    who = caller(request)
    b = await read_body(request, Confirmation)
    request_id = request.match_info["request_id"]
    typed = BindingConfirmation(
        recipient_id=b.recipient_id, name=b.name, address=b.address, code=b.code
    )
    try:
        binding = await ctx.store(request).confirm_binding(
            request_id, typed, actor=who.staff_id, at=ctx.now(request)
        )
    except (Conflict, InvalidInput) as e:
        log.info("binding_refused", request_id=request_id, code=e.code, field=e.field)
        raise
    log.info(
        "binding_confirmed",
        device_id=binding.device_id,
        recipient_id=binding.recipient_id,
        bound=binding.unbound_at is None,
    )
    return ctx.answer(records.binding_json(binding))


# --- the gate and the register -------------------------------------------------------------


async def gate(request: web.Request) -> web.Response:
    q = request.query
    device_id = q.get("device_id", "")
    if not is_id(device_id):
        raise InvalidInput(
            "device_id", "invalid_id", "device_id is 1..64 lowercase letters, digits and dashes"
        )
    try:
        purpose = Purpose(q.get("purpose", Purpose.CAMERA_CHECK.value))
    except ValueError:
        raise InvalidInput("purpose", "invalid_choice", "unknown purpose") from None
    at = ctx.now(request)
    if "at" in q:
        at = parse_instant(q["at"], "at", ctx.zone(request))
        if (problem := rules.check_instant(at, "at")) is not None:
            raise InvalidInput.of(problem)
    basis = await ctx.store(request).basis_for_device(device_id, at)
    if basis is not None and not caller(request).covers(basis.recipient.team_id):
        raise NotFound("device", device_id, "device_id")  # another team's home: not confirmed
    decision = rules.decide(basis, device_id=device_id, purpose=purpose, at=at)
    return ctx.answer(
        {
            "device_id": device_id,
            "purpose": purpose.value,
            "at": records.iso(at),
            **records.decision_json(decision),
        }
    )


async def register(request: web.Request) -> web.Response:
    who = caller(request)
    fmt = request.query.get("format")
    if fmt is None:
        fmt = "csv" if "text/csv" in request.headers.get("Accept", "") else "json"
    if fmt not in {"csv", "json"}:
        raise InvalidInput("format", "invalid_choice", "format is csv or json")
    now = ctx.now(request)
    rows = await ctx.store(request).register(actor=who.staff_id, at=now)
    log.info("register_exported", staff_id=who.staff_id, rows=len(rows), format=fmt)
    if fmt == "csv":
        return web.Response(
            text=camera_register.csv_text(rows),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="kameraregister.csv"'},
        )
    return ctx.answer(
        {
            "generated_at": records.iso(now),
            "cameras": [camera_register.row_json(r) for r in rows],
        }
    )
