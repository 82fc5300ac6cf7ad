"""HTTP routes of the consent slice: brukare, cohabitants, care plans, consents and withdrawal,
pauses, suspension and re-verification, two-step device binding, the gate, and the camera register.

Each body is one Struct beside its handler (``record_api.NewPlan``, ...): the same definition
decodes the body and is published in ``/api/openapi.json``; every validation error names its field
(``checks[1].tolerance_min``). Instants are ISO 8601; without an offset they are local time in the
brukare's zone (or :data:`ZONE` where no brukare is named) and refused if that time does not exist
or is ambiguous. The acting staff id comes from :func:`kernel.access.caller`. Dependencies come
through the typed app keys of :mod:`consent.api_context` (re-exported here), set by the composition
root: :data:`STORE`, :data:`CLOCK`, :data:`ZONE`, :data:`PLAN_HOUR`.

Handlers live in :mod:`consent.record_api` and :mod:`consent.binding_api`; each parses the
request, calls :class:`consent.ports.ConsentStore` (which validates, audits and publishes), and
shapes the answer.
"""

from __future__ import annotations

from consent import binding_api as bind
from consent import record_api as rec
from consent.api_context import CLOCK, PLAN_HOUR, STORE, ZONE
from consent.binding_api import (
    confirm_binding,
    gate,
    list_binding_requests,
    register,
    request_binding,
)
from consent.installation_api import list_installations
from consent.record_api import (
    add_cohabitant,
    create_pause,
    create_plan,
    create_recipient,
    end_pause,
    end_plan,
    get_recipient,
    list_recipients,
    list_suspensions,
    move_out_cohabitant,
    record_consent,
    reverify,
    withdraw_consent,
)
from kernel.permissions import Permission, route
from kernel.roles import Route

__all__ = ["CLOCK", "PLAN_HOUR", "STORE", "ZONE", "routes"]

_TAGS = ("consent",)


# --- routes --------------------------------------------------------------------------------


def routes() -> list[Route]:
    r = route
    t = _TAGS
    return [
        r(
            "GET",
            "/api/recipients",
            list_recipients,
            Permission.READ_CARE_RECORD,
            "List brukare",
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients",
            create_recipient,
            Permission.MANAGE_CARE_RECORD,
            "Register a brukare",
            body=rec.NewRecipient,
            tags=t,
        ),
        r(
            "GET",
            "/api/recipients/{recipient_id}",
            get_recipient,
            Permission.READ_CARE_RECORD,
            "A brukare with cohabitants, plans, consents, pauses, bindings, suspensions and the "
            "gate's answer now",
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients/{recipient_id}/cohabitants",
            add_cohabitant,
            Permission.MANAGE_CARE_RECORD,
            "Register a cohabitant (their consent is then required)",
            body=rec.NewCohabitant,
            tags=t,
        ),
        r(
            "POST",
            "/api/cohabitants/{cohabitant_id}/move-out",
            move_out_cohabitant,
            Permission.MANAGE_CARE_RECORD,
            "A cohabitant moved out",
            body=rec.MoveOut,
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients/{recipient_id}/care-plans",
            create_plan,
            Permission.MANAGE_CARE_RECORD,
            "Register a care plan (agreed check times, view cap, escalation)",
            body=rec.NewPlan,
            tags=t,
        ),
        r(
            "POST",
            "/api/care-plans/{plan_id}/end",
            end_plan,
            Permission.MANAGE_CARE_RECORD,
            "End a care plan",
            body=rec.End,
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients/{recipient_id}/consents",
            record_consent,
            Permission.MANAGE_CARE_RECORD,
            "Record a consent (a new version of the person's consent for the purpose)",
            body=rec.NewConsent,
            tags=t,
        ),
        r(
            "POST",
            "/api/consents/{consent_id}/withdraw",
            withdraw_consent,
            Permission.PAUSE_AND_WITHDRAW,
            "Withdraw a consent; takes effect at once and ends live sessions",
            body=rec.Withdrawal,
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients/{recipient_id}/pauses",
            create_pause,
            Permission.PAUSE_AND_WITHDRAW,
            "Pause camera checks (hospital, travel, visitors)",
            body=rec.NewPause,
            tags=t,
        ),
        r(
            "POST",
            "/api/pauses/{pause_id}/end",
            end_pause,
            Permission.PAUSE_AND_WITHDRAW,
            "End a pause",
            body=rec.End,
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients/{recipient_id}/reverify",
            reverify,
            Permission.MANAGE_CARE_RECORD,
            "Record a re-verification: who was asked, how and what they said; lift or end",
            body=rec.Reverification,
            tags=t,
        ),
        r(
            "GET",
            "/api/suspensions",
            list_suspensions,
            Permission.READ_CARE_RECORD,
            "Brukare whose camera checks are suspended until consent is re-verified",
            tags=t,
        ),
        r(
            "GET",
            "/api/binding-requests",
            list_binding_requests,
            Permission.MANAGE_DEVICES,
            "Binding requests (filter with ?device_id=)",
            tags=t,
        ),
        r(
            "POST",
            "/api/devices/{device_id}/binding-requests",
            request_binding,
            Permission.MANAGE_DEVICES,
            "Step one: ask to bind a device to a brukare's home, or to unbind it",
            body=bind.BindingAsk,
            tags=t,
        ),
        r(
            "POST",
            "/api/binding-requests/{request_id}/confirm",
            confirm_binding,
            Permission.CONFIRM_BINDING,
            "Step two: confirm, naming the brukare",
            body=bind.Confirmation,
            tags=t,
        ),
        r(
            "GET",
            "/api/gate",
            gate,
            Permission.READ_CARE_RECORD,
            "May this device be used for this purpose now (?device_id=&purpose=&at=)",
            tags=t,
        ),
        r(
            "GET",
            "/api/installations",
            list_installations,
            Permission.READ_INSTALLATIONS,
            "Installation addresses and the devices bound there, nothing of the care record "
            "(the technician's view of the homes)",
            tags=t,
        ),
        r(
            "GET",
            "/api/register",
            register,
            Permission.READ_EXTRACTS,
            "The camera register (?format=csv|json); the export is audited",
            tags=t,
        ),
    ]
