"""An offer's media lines against its session's purpose, and the SDP the devices rely on (pure).

:func:`devices.envelope.check_sdp` checks syntax only. Before an offer is relayed to a device,
:func:`check_offer` checks what it asks for (issue 13, findings 2 and 3):

========  ==========================================================================
purpose   media sections the offer may hold
========  ==========================================================================
view      video only, every section ``recvonly`` (the operator looks, nothing else)
probe     video only, every section ``recvonly`` (the backend's motion probe)
call      audio and video, any direction (a two-way call), at least one video
========  ==========================================================================

and, whatever the purpose: a ``BUNDLE`` group, ``a=rtcp-mux`` in every section, one direction
attribute per section (``sendrecv``/``sendonly``/``recvonly``/``inactive``, or one at session
level), and known media kinds (``audio``, ``video``). A section with port 0 is rejected by its
sender and carries no media; it must still be of a known kind. The answer is ``None`` or the
first :class:`OfferProblem`; the SDP itself never appears in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from devices.envelope import Purpose

DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
KNOWN_KINDS = frozenset({"audio", "video"})
#: The media kinds each purpose may ask for.
ALLOWED_KINDS: dict[Purpose, frozenset[str]] = {
    Purpose.VIEW: frozenset({"video"}),
    Purpose.PROBE: frozenset({"video"}),
    Purpose.CALL: frozenset({"audio", "video"}),
}
#: Purposes whose offer may only receive.
RECEIVE_ONLY = frozenset({Purpose.VIEW, Purpose.PROBE})


class OfferProblem(StrEnum):
    NO_MEDIA = "no_media"  # no m= section at all
    UNKNOWN_MEDIA = "unknown_media"  # m=application, m=text, ...
    NO_BUNDLE = "no_bundle"  # no a=group:BUNDLE
    NO_RTCP_MUX = "no_rtcp_mux"  # a section without a=rtcp-mux
    NO_DIRECTION = "no_direction"  # a section with no (or more than one) direction
    MEDIA_NOT_ALLOWED = "media_not_allowed"  # e.g. audio in a view's offer
    NOT_RECEIVE_ONLY = "not_receive_only"  # a view's offer that would send
    NO_VIDEO = "no_video"  # nothing to see


MESSAGES: dict[OfferProblem, str] = {
    OfferProblem.NO_MEDIA: "the offer has no media section",
    OfferProblem.UNKNOWN_MEDIA: "the offer has a media kind other than audio or video",
    OfferProblem.NO_BUNDLE: "the offer must bundle its media (a=group:BUNDLE)",
    OfferProblem.NO_RTCP_MUX: "every media section needs a=rtcp-mux",
    OfferProblem.NO_DIRECTION: "every media section needs one direction attribute",
    OfferProblem.MEDIA_NOT_ALLOWED: "this purpose does not allow that media (a view is video only)",
    OfferProblem.NOT_RECEIVE_ONLY: "a view or probe may only receive (recvonly)",
    OfferProblem.NO_VIDEO: "the offer receives no video",
}


@dataclass(frozen=True, slots=True)
class MediaSection:
    kind: str
    port: int
    direction: str | None  # None: none or several
    has_rtcp_mux: bool


@dataclass(frozen=True, slots=True)
class OfferSummary:
    """What an SDP asks for, enough to judge it."""

    sections: tuple[MediaSection, ...]
    has_bundle: bool

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(s.kind for s in self.sections if s.port != 0)


def summarise(sdp: str) -> OfferSummary:
    """Split ``sdp`` (already syntax-checked) into its media sections."""
    session_dirs: list[str] = []
    has_bundle = False
    sections: list[MediaSection] = []
    current: tuple[str, int] | None = None
    dirs: list[str] = []
    mux = False

    def flush() -> None:
        if current is not None:
            found = dirs or session_dirs
            direction = found[0] if len(found) == 1 else None
            sections.append(MediaSection(current[0], current[1], direction, mux))

    for raw in sdp.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("m="):
            flush()
            parts = line[2:].split()
            port = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
            current, dirs, mux = (parts[0] if parts else "", port), [], False
        elif line.startswith("a="):
            attr = line[2:]
            if attr in DIRECTIONS:
                (dirs if current is not None else session_dirs).append(attr)
            elif attr == "rtcp-mux" and current is not None:
                mux = True
            elif attr.startswith("group:BUNDLE"):
                has_bundle = True
    flush()
    return OfferSummary(tuple(sections), has_bundle)


def check_summary(purpose: Purpose, offer: OfferSummary) -> OfferProblem | None:
    """The first thing wrong with an offer of this shape for ``purpose``, else ``None``."""
    if not offer.sections:
        return OfferProblem.NO_MEDIA
    if any(s.kind not in KNOWN_KINDS for s in offer.sections):
        return OfferProblem.UNKNOWN_MEDIA
    if not offer.has_bundle:
        return OfferProblem.NO_BUNDLE
    live = [s for s in offer.sections if s.port != 0]
    if any(not s.has_rtcp_mux for s in live):
        return OfferProblem.NO_RTCP_MUX
    if any(s.direction is None for s in live):
        return OfferProblem.NO_DIRECTION
    if not offer.kinds <= ALLOWED_KINDS[purpose]:
        return OfferProblem.MEDIA_NOT_ALLOWED
    if purpose in RECEIVE_ONLY and any(s.direction not in {"recvonly", "inactive"} for s in live):
        return OfferProblem.NOT_RECEIVE_ONLY
    if not any(s.kind == "video" and s.direction in {"recvonly", "sendrecv"} for s in live):
        return OfferProblem.NO_VIDEO
    return None


def check_offer(purpose: Purpose, sdp: str) -> OfferProblem | None:
    """:func:`check_summary` of :func:`summarise`."""
    return check_summary(purpose, summarise(sdp))
