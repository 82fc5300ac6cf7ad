"""Simulated homes: a camera in every home, a video phone in every third one.

With :func:`media` every device also answers WebRTC offers with real media
(:mod:`homeside.peer`): each camera shows its home's scene (:func:`parse_scenes`: one kind for
all homes or ``N=kind`` per home, ``kind:ir`` for night vision), changeable at run time by the
``scene`` command; each video phone answers calls by its :class:`~homeside.peer.AnswerPolicy`.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from devices import topics
from devices.topics import DeviceKind
from homeside import peer as device_peer
from homeside.device import DeviceClient, DeviceSpec
from homeside.media import FrameSource
from homeside.peer import AnswerPolicy, DevicePeer
from simulators.rover import RoverView, SimBody
from simulators.scenes import Scene, SceneKind

#: Lets media and call behaviour (homeside.peer) attach to each device before it connects.
Decorate = Callable[[DeviceClient], None]


def camera_id(home: int) -> str:
    return f"cam-{home:04d}"


def phone_id(home: int) -> str:
    return f"phone-{home:04d}"


#: Scenes of homes without a ``--scene``: mostly asleep, some life in between.
DEFAULT_SCENES = (
    SceneKind.ASLEEP,
    SceneKind.RESTLESS,
    SceneKind.ASLEEP,
    SceneKind.WALKING,
    SceneKind.EMPTY_BED,
    SceneKind.ASLEEP,
)


@dataclass(frozen=True, slots=True)
class SceneChoice:
    """What a camera shows: a :class:`SceneKind`, optionally through night vision (``ir``)."""

    kind: SceneKind
    ir: bool = False

    @classmethod
    def parse(cls, text: str) -> SceneChoice:
        """``asleep``, ``fallen:ir``, ...; ``ValueError`` naming the kinds otherwise."""
        head, _, extra = text.strip().lower().partition(":")
        try:
            kind = SceneKind(head)
        except ValueError:
            names = ", ".join(k.value for k in SceneKind)
            raise ValueError(f"unknown scene {head!r}; one of {names}") from None
        if extra not in {"", "ir"}:
            raise ValueError("a scene takes only the suffix :ir (night vision)")
        return cls(kind, ir=extra == "ir")

    def scene(self, device_id: str) -> Scene:
        return Scene(self.kind, seed=zlib.crc32(device_id.encode()) & 0xFFFF, ir=self.ir)


def parse_scenes(items: Iterable[str]) -> tuple[SceneChoice | None, dict[int, SceneChoice]]:
    """``--scene`` values: ``kind`` (every home) or ``N=kind`` (home N); the last one wins."""
    every: SceneChoice | None = None
    per_home: dict[int, SceneChoice] = {}
    for item in items:
        home, sep, kind = item.partition("=")
        if not sep:
            every = SceneChoice.parse(item)
            continue
        if not home.strip().isdigit():
            raise ValueError(f"--scene {item!r}: write N=kind with N a home number")
        per_home[int(home)] = SceneChoice.parse(kind)
    return every, per_home


def scene_of(
    home: int, every: SceneChoice | None = None, per_home: Mapping[int, SceneChoice] | None = None
) -> SceneChoice:
    if per_home and home in per_home:
        return per_home[home]
    return every or SceneChoice(DEFAULT_SCENES[(home - 1) % len(DEFAULT_SCENES)])


def home_of(device_id: str) -> int:
    """The home number in a simulated device id (``cam-0003`` -> 3)."""
    tail = device_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def attach(
    device: DeviceClient, *, scene: FrameSource | None = None, policy: AnswerPolicy | None = None
) -> DevicePeer:
    """Give a simulated ``device`` real media (``scene``, by default its home asleep) and call
    behaviour, and the simulator's own ``scene`` command; returns the peer for inspection. A
    video phone rolls: its wheels are a :class:`~simulators.rover.SimBody` that starts on its
    charger (``peer.wheels.driver``), and its camera sees the scene from where it stands."""
    seed = zlib.crc32(device.spec.device_id.encode()) & 0xFFFF
    body = SimBody() if device.spec.kind is DeviceKind.VIDEO_PHONE else None

    def seen(source: FrameSource) -> FrameSource:
        return source if body is None else RoverView(source, body)

    peer = device_peer.attach(
        device,
        scene=seen(scene or Scene(SceneKind.ASLEEP, seed=seed)),
        policy=policy,
        driver=body,
    )

    async def on_scene(command: topics.Command) -> tuple[bool, str | None]:
        """``{"scene": kind, "ir": bool}``: what the camera shows from the next frame on."""
        ir = command.args.get("ir", False)
        try:
            kind = SceneKind(str(command.args.get("scene")))
        except ValueError:
            return False, "unknown_scene"
        if not isinstance(ir, bool):
            return False, "bad_args"
        peer.set_source(seen(Scene(kind, seed=seed, ir=ir)))
        return True, None

    device.on_command[topics.CommandOp.SCENE] = on_scene
    return peer


def media(
    *,
    every: SceneChoice | None = None,
    per_home: Mapping[int, SceneChoice] | None = None,
    policy: AnswerPolicy | None = None,
    peers: dict[str, DevicePeer] | None = None,
) -> Decorate:
    """A :data:`Decorate` that gives each device real media; ``peers`` collects them by id."""

    def decorate(device: DeviceClient) -> None:
        device_id = device.spec.device_id
        scene = scene_of(home_of(device_id), every, per_home).scene(device_id)
        peer = attach(device, scene=scene, policy=policy)
        if peers is not None:
            peers[device_id] = peer

    return decorate


def home_devices(homes: int, first: int = 1) -> list[DeviceSpec]:
    """Devices of homes ``first .. first + homes - 1``."""
    specs: list[DeviceSpec] = []
    for home in range(first, first + homes):
        specs.append(DeviceSpec(camera_id(home), DeviceKind.CAMERA))
        if home % 3 == 0:
            specs.append(
                DeviceSpec(phone_id(home), DeviceKind.VIDEO_PHONE, width=640, height=480, fps=15.0)
            )
    return specs


async def run_devices(
    specs: Iterable[DeviceSpec],
    *,
    mqtt_url: str,
    prefix: str,
    keepalive_s: int,
    stop: asyncio.Event,
    decorate: Decorate | None = None,
    health_interval_s: float = 30.0,
) -> list[DeviceClient]:
    """Run the devices until ``stop`` is set; they connect in a staggered burst."""
    devices = []
    for spec in specs:
        device = DeviceClient(
            spec,
            mqtt_url,
            prefix=prefix,
            keepalive_s=keepalive_s,
            health_interval_s=health_interval_s,
        )
        if decorate is not None:
            decorate(device)
        devices.append(device)
    async with asyncio.TaskGroup() as tg:
        for i, device in enumerate(devices):
            tg.create_task(_start_later(device, stop, i * 0.01))
    return devices


async def _start_later(device: DeviceClient, stop: asyncio.Event, delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    await device.run(stop)
