"""Device identity on a real Mosquitto running ``deploy/mosquitto/`` (TLS, password file, ACL).

A second broker (not the shared test broker) is started with the production configuration on free
loopback ports, with accounts made by ``homecare devices provision``. It proves that a device can
use its own subtree and nothing else: it can neither publish on nor read another device's topics,
cannot fake the backend's status or take over another device's session or the backend's client
id; its credentials work on the device listener only (issue 13, finding 4); unknown users, wrong
passwords and anonymous clients are refused; the backend account reaches everything, including
the shared subscriptions of signalling. Finally the real device agent and the backend's MQTT link
connect with credentials taken from their ``mqtts://`` URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiomqtt
import pytest

from devices import topics
from homeside.device import DeviceClient, DeviceSpec
from services.mqtt import MqttLink
from tests.deploy_broker import DeployBroker, deploy_broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

A, B, BACKEND = "cam-a", "cam-b", "homecare_backend"
P = "hc/v1"
WILL = b'{"state":"offline","instance":"api-1"}'


@pytest.fixture(scope="module")
def broker() -> Iterator[DeployBroker]:
    with deploy_broker((A, B, BACKEND)) as found:
        yield found


@contextlib.asynccontextmanager
async def client(
    broker: DeployBroker,
    username: str | None,
    password: str | None = None,
    *,
    port: str = "device",
    identifier: str | None = None,
) -> AsyncIterator[aiomqtt.Client]:
    tls: ssl.SSLContext | None = broker.tls_context()
    number = {"device": broker.device_port, "service": broker.service_port}.get(port)
    if number is None:
        number, tls = broker.loopback_port, None
    if username is not None and password is None:
        password = broker.passwords[username]
    async with aiomqtt.Client(
        "127.0.0.1",
        number,
        username=username,
        password=password,
        identifier=identifier,
        tls_context=tls,
        timeout=5,
    ) as c:
        yield c


async def collect(c: aiomqtt.Client, seconds: float) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for m in c.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                got.append((str(m.topic), payload))
    return got


async def until(c: aiomqtt.Client, topic: str, seconds: float = 5) -> list[tuple[str, bytes]]:
    """Messages up to and including the first one on ``topic``."""
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(seconds):
        async for m in c.messages:
            payload = m.payload if isinstance(m.payload, bytes) else b""
            got.append((str(m.topic), payload))
            if str(m.topic) == topic:
                return got
    raise AssertionError("unreachable")


async def test_device_uses_its_own_subtree_and_reads_the_server_status(
    broker: DeployBroker,
) -> None:
    async with client(broker, BACKEND, port="service") as backend, client(broker, A) as a:
        await backend.publish(f"{P}/server/status", b'{"state":"online"}', qos=1, retain=True)
        await backend.subscribe(f"{P}/dev/+/#", qos=1)
        await a.subscribe(f"{P}/dev/{A}/cmd", qos=1)
        await a.subscribe(f"{P}/server/status", qos=1)
        assert (await until(a, f"{P}/server/status"))[-1][1] == b'{"state":"online"}'

        await a.publish(f"{P}/dev/{A}/status", b'{"state":"online"}', qos=1, retain=True)
        assert (await until(backend, f"{P}/dev/{A}/status"))[-1][1] == b'{"state":"online"}'
        await backend.publish(f"{P}/dev/{A}/cmd", b'{"id":"1","op":"wake"}', qos=1)
        assert (await until(a, f"{P}/dev/{A}/cmd"))[-1][1] == b'{"id":"1","op":"wake"}'


async def test_device_cannot_publish_on_another_device_or_as_the_backend(
    broker: DeployBroker,
) -> None:
    forged = [
        f"{P}/dev/{B}/status",
        f"{P}/dev/{B}/event",
        f"{P}/dev/{B}/cmd",
        f"{P}/dev/{B}/cmd/ack",
        f"{P}/dev/{B}/webrtc/out",
        f"{P}/server/status",
        f"{P}/dev/{A}x/status",
        "elsewhere/x",
    ]
    async with (
        client(broker, BACKEND, port="service") as backend,
        client(broker, B) as b,
        client(broker, A) as a,
    ):
        await backend.subscribe("#", qos=1)
        await b.subscribe(f"{P}/dev/{B}/#", qos=1)
        for name in forged:
            await a.publish(name, b'{"state":"offline"}', qos=1, retain=True)
        # A's own message after the forged ones: once the backend has it, the broker has
        # processed (and refused) everything A sent before it on the same connection.
        await a.publish(f"{P}/dev/{A}/event", b"barrier", qos=1)
        seen = await until(backend, f"{P}/dev/{A}/event")
        # (retained messages of A's own subtree and the server status may arrive first)
        allowed = (f"{P}/dev/{A}/", f"{P}/server/status")
        assert [t for t, _ in seen if not t.startswith(allowed)] == []
        assert await collect(b, 0.3) == []
    # Nothing forged was retained either.
    async with client(broker, BACKEND, port="service") as backend:
        await backend.subscribe(f"{P}/dev/{B}/#", qos=1)
        await backend.subscribe("elsewhere/#", qos=1)
        assert await collect(backend, 0.5) == []


async def test_device_cannot_read_another_device(broker: DeployBroker) -> None:
    async with client(broker, B) as b:
        await b.publish(f"{P}/dev/{B}/meta", b'{"kind":"camera"}', qos=1, retain=True)
    async with client(broker, A) as a, client(broker, B) as b:
        for pattern in (f"{P}/dev/{B}/#", f"{P}/dev/+/meta", f"{P}/dev/+/event", f"{P}/#", "#"):
            await a.subscribe(pattern, qos=1)
        await b.publish(f"{P}/dev/{B}/event", b'{"type":"tamper"}', qos=1)
        await b.publish(f"{P}/dev/{B}/webrtc/out", b"{}", qos=1)
        await a.publish(f"{P}/dev/{A}/event", b"mine", qos=1)
        got = await collect(a, 1.0)
    names = {t for t, _ in got}
    assert f"{P}/dev/{A}/event" in names  # the wildcards work for A's own subtree
    assert not any(f"/dev/{B}/" in t for t in names), got
    assert all(t.startswith((f"{P}/dev/{A}/", f"{P}/server/status")) for t in names), names


@pytest.mark.parametrize("claimed", [f"dev-{A}", A])
async def test_a_device_cannot_take_over_another_devices_session(
    broker: DeployBroker, claimed: str
) -> None:
    async with client(broker, A, identifier=claimed) as a:
        await a.subscribe(f"{P}/dev/{A}/cmd", qos=1)
        # B claims A's client id; on the device listener the client id is the username.
        async with client(broker, B, identifier=claimed):
            async with client(broker, BACKEND, port="service") as backend:
                await backend.publish(f"{P}/dev/{A}/cmd", b"still-here", qos=1)
            assert (await until(a, f"{P}/dev/{A}/cmd"))[-1][1] == b"still-here"


@pytest.mark.parametrize("port", ["service", "loopback"])
async def test_device_credentials_work_on_the_device_listener_only(
    broker: DeployBroker, port: str
) -> None:
    """Where client ids are free (the backend's listeners), a device account does not exist."""
    with pytest.raises(aiomqtt.MqttError) as refused:
        async with client(broker, A, port=port):
            pass
    assert "authori" in str(refused.value).lower() or "password" in str(refused.value).lower()


async def test_a_device_cannot_take_the_backends_client_id(broker: DeployBroker) -> None:
    """The backend's client id is public (its instance is in the retained ``server/status``): a
    device claiming it on any listener neither kicks the backend off nor fires its will."""
    backend_id = "homecare-api-1-0badcafe"
    will = aiomqtt.Will(f"{P}/server/status", WILL, qos=1, retain=False)
    async with (
        client(broker, BACKEND, port="service") as observer,
        aiomqtt.Client(
            "127.0.0.1",
            broker.service_port,
            username=BACKEND,
            password=broker.passwords[BACKEND],
            identifier=backend_id,
            tls_context=broker.tls_context(),
            will=will,
            timeout=5,
        ) as backend,
    ):
        await observer.subscribe(f"{P}/server/status", qos=1)
        await observer.subscribe(f"{P}/dev/{A}/event", qos=1)
        await backend.subscribe(f"{P}/dev/{A}/cmd", qos=1)
        for port in ("service", "loopback"):
            with pytest.raises(aiomqtt.MqttError):
                async with client(broker, A, port=port, identifier=backend_id):
                    pass
        # on the device listener the claimed id is replaced by the username
        async with client(broker, A, identifier=backend_id) as a:
            await a.subscribe(f"{P}/dev/{A}/cmd", qos=1)
            await backend.publish(f"{P}/dev/{A}/cmd", b"backend-still-here", qos=1)
            assert (await until(a, f"{P}/dev/{A}/cmd"))[-1][1] == b"backend-still-here"
            await a.publish(f"{P}/dev/{A}/event", b"barrier", qos=1)
            seen = await until(observer, f"{P}/dev/{A}/event")
        assert (f"{P}/server/status", WILL) not in seen  # the backend's will never fired


@pytest.mark.parametrize("port", ["device", "service", "loopback"])
@pytest.mark.parametrize(
    ("username", "password"),
    [("cam-unknown", "whatever"), (A, "wrong-password"), (BACKEND, ""), (None, None)],
)
async def test_unknown_users_wrong_passwords_and_anonymous_are_refused(
    broker: DeployBroker, port: str, username: str | None, password: str | None
) -> None:
    with pytest.raises(aiomqtt.MqttError) as refused:
        async with client(broker, username, password, port=port):
            pass
    assert "authori" in str(refused.value).lower() or "password" in str(refused.value).lower()


async def test_plain_mqtt_is_refused_on_the_tls_listeners(broker: DeployBroker) -> None:
    for number in (broker.device_port, broker.service_port):
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1",
                number,
                username=A,
                password=broker.passwords[A],
                timeout=2,
            ):
                pass


async def test_backend_has_full_access_with_shared_subscriptions(broker: DeployBroker) -> None:
    group = f"$share/hc-signal/{P}/dev/+/webrtc/out"
    async with (
        client(broker, BACKEND, port="service", identifier="homecare-signal-1") as one,
        client(broker, BACKEND, port="service", identifier="homecare-signal-2") as two,
        client(broker, A) as a,
    ):
        await one.subscribe(group, qos=1)
        await two.subscribe(group, qos=1)
        for i in range(6):
            await a.publish(f"{P}/dev/{A}/webrtc/out", str(i).encode(), qos=1)
        got = await collect(one, 0.7) + await collect(two, 0.3)
        # Both backend clients stay connected side by side (own client ids on this listener)
        # and every message reaches exactly one of them.
        assert sorted(p for _, p in got) == [str(i).encode() for i in range(6)]
        await one.publish(f"{P}/dev/{B}/cmd", b"x", qos=1)
        await one.publish("hc/v1/anything/at/all", b"x", qos=1)


async def test_simulated_device_and_backend_link_use_credentials_from_urls(
    broker: DeployBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the real device agent (device listener) and the backend's link (service
    listener), both over mqtts:// verified against the test CA via SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(broker.ca_file))
    device_url = f"mqtts://{A}:{broker.passwords[A]}@localhost:{broker.device_port}"
    backend_url = f"mqtts://{BACKEND}:{broker.passwords[BACKEND]}@localhost:{broker.service_port}"
    statuses: asyncio.Queue[bytes] = asyncio.Queue()
    acks: asyncio.Queue[topics.CommandAck] = asyncio.Queue()

    async def on_status(topic: topics.Topic, payload: bytes) -> None:
        if topic.device_id == A:
            statuses.put_nowait(payload)

    async def on_ack(topic: topics.Topic, payload: bytes) -> None:
        if topic.device_id == A:
            acks.put_nowait(topics.decode_ack(payload))

    link = MqttLink(backend_url, prefix=P, keepalive_s=5, instance_id="acl-test")
    link.subscribe(topics.Channel.STATUS, on_status)
    link.subscribe(topics.Channel.CMD_ACK, on_ack)
    device = DeviceClient(DeviceSpec(A, topics.DeviceKind.CAMERA), device_url, prefix=P)
    stop = asyncio.Event()
    async with link:
        await asyncio.wait_for(link.connected.wait(), 10)
        runner = asyncio.create_task(device.run(stop))
        try:
            await asyncio.wait_for(device.connected.wait(), 10)
            status: dict[str, Any] = json.loads(await asyncio.wait_for(statuses.get(), 5))
            assert status["state"] == "online"
            command = topics.Command(id="acl-1", op=topics.CommandOp.WAKE)
            await link.publish(topics.topic(P, A, topics.Channel.CMD), command.encode())
            ack = await asyncio.wait_for(acks.get(), 5)
            assert (ack.id, ack.ok) == ("acl-1", True)
        finally:
            stop.set()
            await asyncio.wait_for(runner, 10)
    assert f"u'{A}'" in broker.log()
    assert f"u'{BACKEND}'" in broker.log()


async def test_a_device_with_a_wrong_password_never_gets_in(
    broker: DeployBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(broker.ca_file))
    url = f"mqtts://{A}:not-{broker.passwords[A]}@localhost:{broker.device_port}"
    device = DeviceClient(DeviceSpec(A, topics.DeviceKind.CAMERA), url, prefix=P)
    stop = asyncio.Event()
    runner = asyncio.create_task(device.run(stop))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(device.connected.wait()), 1.5)
    stop.set()
    await asyncio.wait_for(runner, 10)
