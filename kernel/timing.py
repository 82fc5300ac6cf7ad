"""The timing policy: every deadline and interval of the system in one frozen value.

Production uses :data:`DEFAULT_TIMING`. The composition root builds one :class:`Timing` from the
settings (``HOMECARE_TIMING="ring_timeout_s=5,document_grace_s=20"`` overrides single fields; see
:func:`parse`) and hands it down: the round's deadlines (``supervision.checks``), the workers and
the watchdog, the wake command, signalling's caps, timers and row closes (every duration of
``services.signalling.ports.SignallingConfig`` is filled from the field of the same name;
its rates and counts stay its own). Tests pass a fast one; a clock that runs faster
(``kernel.clock.ScaledClock``) shortens the same deadlines without another setting.

Seconds throughout. Pure: no I/O, nothing but the standard library.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timing:
    """System-wide deadlines and intervals (seconds), the one documented place for them."""

    # --- the round's deadlines (supervision.checks: a check's ``deadline``, alarms)
    claim_grace_s: float = 120  # a due check must be claimed by a worker within this
    probe_timeout_s: float = 60  # a worker's claim expires after this; another takes over
    document_grace_s: float = 120  # after the view cap, time to document the outcome
    alarm_grace_s: float = 30  # a deadline missed by more than this raises an alarm
    # (a person's other steps, a queued view, a call, the patrol, follow the care plan's
    # deadlines: consent.model.Deadlines)

    # --- the round's workers and watchdog (supervision.runner, supervision.watchdog)
    poll_s: float = 1.0  # how often an idle worker or the watchdog looks again
    probe_window_s: float = 8.0  # how long the motion probe watches (camera time)
    wake_timeout_s: float = 5.0  # a camera acknowledges ``wake`` within this
    link_retry_s: float = 1.0  # own broker link down: try the check again after this
    link_wait_s: float = 30.0  # ... for this long, then the claim lapses (< probe_timeout_s)
    no_prober_claim_after_s: float = 30.0  # a worker without the probe leaves due checks this long
    offline_horizon_s: float = 30 * 60  # a camera lost: checks this close to their window patrol
    reconcile_after_s: float = 3600  # after the round's end (noon), close the night

    # --- live view and calls (services.signalling)
    default_cap_s: float = 30.0  # view cap when a plan names none
    ring_timeout_s: float = 30.0  # an unanswered call ends as no_answer
    max_call_s: float = 3600.0  # a Svara call's limit (an auto-answered one: the plan's call_cap_s)
    stale_video_s: float = 1.0  # no frame for this long: the video is stale
    recheck_interval_s: float = 5.0  # open sessions ask the gate again this often
    sweep_interval_s: float = 10.0  # sessions of dead processes are looked for this often
    sweep_grace_s: float = 5.0  # ... and closed this long past their deadline
    command_timeout_s: float = 3.0  # a device acknowledges a signalling command within this
    indicator_ack_s: float = 2.0  # ``indicator on`` unacked this long: the look is device trouble
    # ... waits for the database (loop time, not deadlines of the night):
    close_wait_s: float = 2.0  # a ``bye`` waits this long for its row to close (the close goes on)
    pending_close_wait_s: float = 10.0  # a request waits this long for the device's last close

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"timing {f.name} must be a positive number of seconds")
        if self.link_wait_s >= self.probe_timeout_s:
            raise ValueError("timing link_wait_s must be shorter than probe_timeout_s")

    def scaled(self, factor: float) -> Timing:
        """Every duration times ``factor`` (a night run faster: ``scaled(1 / speed)``)."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError("factor must be a positive number")
        return Timing(**{f.name: getattr(self, f.name) * factor for f in dataclasses.fields(self)})


DEFAULT_TIMING = Timing()

FIELDS = tuple(f.name for f in dataclasses.fields(Timing))


def parse(raw: str, base: Timing = DEFAULT_TIMING) -> Timing:
    """``"name=seconds,name=seconds"`` over ``base``; a clear ``ValueError`` for bad input."""
    changes: dict[str, float] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in FIELDS:
            raise ValueError(
                f"takes name=seconds pairs separated by commas; {name!r} is not one of "
                + ", ".join(FIELDS)
            )
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{name} must be a number of seconds, got {value.strip()!r}") from None
        changes[name] = seconds
    return dataclasses.replace(base, **changes)
