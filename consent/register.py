"""The camera register (pure): per device binding, its location, purposes, legal basis, start
and end, for the municipality's records (issue item 11); as rows, JSON objects or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from consent import records, rules
from consent.model import Basis, Purpose, RecipientBasis
from consent.ports import RegisterRow

_JUST_BEFORE = timedelta(microseconds=1)


def register_rows(bases: Iterable[RecipientBasis], *, at: datetime) -> list[RegisterRow]:
    """One row per binding ever confirmed, ordered by device then start. Purposes and basis are
    those in force at ``at``, or just before the binding ended."""
    rows: list[RegisterRow] = []
    for basis in bases:
        zone = rules.zone_of(basis.recipient.time_zone)
        for b in basis.bindings:
            ref = at if b.unbound_at is None or b.unbound_at > at else b.unbound_at - _JUST_BEFORE
            purposes = tuple(
                p.value for p in Purpose if rules.consent_reason(basis, None, p, ref, zone) is None
            )
            camera = rules.consent_in_force(
                basis.consents, cohabitant_id=None, purpose=Purpose.CAMERA_CHECK, at=ref
            )
            legal = ""
            if camera is not None and camera.has_legal_basis:
                legal = camera.basis.value if camera.basis else ""
                if camera.basis is Basis.OTHER_LEGAL_BASIS:
                    legal = f"{legal}: {camera.basis_ref}"
            plan = next((p for p in basis.plans if p.is_active(ref)), None)
            if plan is None and basis.plans:
                plan = max(basis.plans, key=lambda p: p.valid_from)
            rows.append(
                RegisterRow(
                    device_id=b.device_id,
                    device_kind=b.device_kind or "",
                    recipient_id=b.recipient_id,
                    location=basis.recipient.home,
                    purposes=purposes,
                    legal_basis=legal,
                    decision_ref=plan.decision_ref if plan else "",
                    start=b.bound_at,
                    end=b.unbound_at,
                )
            )
    rows.sort(key=lambda r: (r.device_id, r.start))
    return rows


CSV_COLUMNS = (
    "device_id",
    "device_kind",
    "recipient_id",
    "location",
    "purposes",
    "legal_basis",
    "decision_ref",
    "start",
    "end",
)


def row_json(r: RegisterRow) -> dict[str, Any]:
    return {
        "device_id": r.device_id,
        "device_kind": r.device_kind,
        "recipient_id": r.recipient_id,
        "location": r.location,
        "purposes": list(r.purposes),
        "legal_basis": r.legal_basis,
        "decision_ref": r.decision_ref,
        "start": records.iso(r.start),
        "end": records.iso(r.end),
    }


def _cell(value: str) -> str:
    """Neutralise spreadsheet formulas in free text (CSV injection)."""
    return f"'{value}" if value[:1] in {"=", "+", "-", "@", "\t", "\r"} else value


def csv_text(rows: Iterable[RegisterRow]) -> str:
    """The register as CSV (CRLF lines, a header row), free text safe to open in a spreadsheet."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow(
            [
                r.device_id,
                r.device_kind,
                r.recipient_id,
                _cell(r.location),
                ";".join(r.purposes),
                _cell(r.legal_basis),
                _cell(r.decision_ref),
                records.iso(r.start),
                records.iso(r.end) or "",
            ]
        )
    return out.getvalue()
