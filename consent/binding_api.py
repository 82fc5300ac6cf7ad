"""HTTP handlers of the consent slice for two-step device binding, the gate and the camera
register (routes in :func:`consent.api.routes`). Each decodes its body's Struct (declared above
it), calls the store's port, and shapes the answer."""

from __future__ import annotations

import structlog
from aiohttp import web

from consent import api_context as ctx
from consent import records, rules
from consent import register as camera_register
from consent.errors import InvalidInput
from consent.model import BindingAction, Purpose
from consent.ports import new_id
from kernel.access import caller
from kernel.body import Fields, Id, parse_instant, read_body
from kernel.codec import CodecError
from kernel.values import is_id

log = structlog.get_logger("consent.api")


# --- device binding ------------------------------------------------------------------------


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


async def request_binding(request: web.Request) -> web.Response:
    who = caller(request)
    device_id = request.match_info["device_id"]
    b = await read_body(request, BindingAsk)
    req = await ctx.store(request).request_binding(
        request_id=new_id("breq"),
        action=b.action,
        device_id=device_id,
        recipient_id=b.recipient_id,
        actor=who.staff_id,
        at=ctx.now(request),
    )
    log.info(
        "binding_requested", device_id=device_id, action=b.action.value, request_id=req.request_id
    )
    return ctx.answer(records.request_json(req), 201)


class Confirmation(Fields):
    """Step two: the confirming administrator names the brukare the request is for."""

    recipient_id: Id


async def confirm_binding(request: web.Request) -> web.Response:
    who = caller(request)
    rid = (await read_body(request, Confirmation)).recipient_id
    binding = await ctx.store(request).confirm_binding(
        request.match_info["request_id"], recipient_id=rid, actor=who.staff_id, at=ctx.now(request)
    )
    log.info(
        "binding_confirmed",
        device_id=binding.device_id,
        recipient_id=rid,
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
