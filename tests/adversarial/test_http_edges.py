"""Issue 13, findings 11 and 13, and issue 12's error mapping, at the HTTP edge.

- 11: a client that trickles its headers, or its body, is cut off within the configured timeout
  (raw asyncio sockets on loopback against the same ``web.AppRunner`` options ``serve`` uses);
- 13: ``/api/*`` answers say ``Cache-Control: no-store``; a body that is not ``application/json``
  is 415; ``/metrics`` only for loopback or the metrics token;
- a bare ``ValueError`` (or ``KeyError``) from our code is a 500 with a generic message and a
  logged traceback; only errors that carry ``http_status`` show their message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from kernel.body import Fields, read_body
from kernel.errors import InvalidInput
from kernel.roles import PUBLIC, Route
from services.web import http, metrics

Client = TestClient[web.Request, web.Application]
TIMEOUT_S = 0.3


class Named(Fields):
    name: str | None = None


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"name": (await read_body(request, Named)).name})


async def bare_value_error(request: web.Request) -> web.Response:
    raise ValueError("internal detail: row 17 of table secret_things")


async def bare_key_error(request: web.Request) -> web.Response:
    return web.json_response({}[request.path])


async def invalid_input(request: web.Request) -> web.Response:
    raise InvalidInput("when", "invalid", "when must be a date")


class ProviderDown(Exception):
    http_status = 502
    code = "oidc_provider"


async def upstream_failed(request: web.Request) -> web.Response:
    raise ProviderDown("the identity provider did not answer")


async def plain(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def app(body_timeout_s: float = 30.0) -> web.Application:
    a = http.make_app(max_body_bytes=4096, body_timeout_s=body_timeout_s)
    http.add_routes(
        a,
        [
            Route("POST", "/api/echo", echo, PUBLIC, "echo", body=Named),
            Route("GET", "/api/value-error", bare_value_error, PUBLIC, "bug"),
            Route("GET", "/api/key-error", bare_key_error, PUBLIC, "bug"),
            Route("GET", "/api/invalid", invalid_input, PUBLIC, "bad value"),
            Route("GET", "/api/upstream", upstream_failed, PUBLIC, "provider down"),
            Route("GET", "/healthz", plain, PUBLIC, "alive"),
        ],
    )
    return a


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with TestClient(TestServer(app())) as c:
        yield c


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, int]]:
    """The app behind the runner options ``services.app.serve`` uses, with short timeouts."""
    runner = web.AppRunner(
        app(body_timeout_s=TIMEOUT_S),
        handle_signals=False,
        **http.server_options(header_timeout_s=TIMEOUT_S),
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = getattr(site, "_server", None)
    assert server is not None
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield host, port
    finally:
        await runner.cleanup()


async def _trickle_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, chunk: bytes, limit_s: float
) -> tuple[float, bytes]:
    """Send ``chunk`` every 50 ms until the server closes; return the time it took and what the
    server said. Fails if the server is still listening after ``limit_s``."""
    started = time.monotonic()
    answer = b""
    while time.monotonic() - started < limit_s:
        try:
            writer.write(chunk)
            await writer.drain()
        except (ConnectionError, OSError):
            break
        try:
            got = await asyncio.wait_for(reader.read(4096), 0.05)
        except TimeoutError:
            continue
        if not got:
            break
        answer += got
    else:
        pytest.fail(f"the server kept the connection open for {limit_s} s")
    return time.monotonic() - started, answer


async def test_a_client_trickling_its_headers_is_closed_within_the_timeout(
    served: tuple[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(*served)
    writer.write(b"POST /api/echo HTTP/1.1\r\nHost: x\r\n")
    took_s, _ = await _trickle_until_closed(reader, writer, b"X-Slow: a\r\n", limit_s=5.0)
    writer.close()
    assert took_s < TIMEOUT_S + 1.0


async def test_a_client_trickling_its_body_gets_408_and_is_closed(
    served: tuple[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(*served)
    writer.write(
        b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4000\r\n\r\n{"
    )
    took_s, answer = await _trickle_until_closed(reader, writer, b" ", limit_s=5.0)
    writer.close()
    assert took_s < 2 * TIMEOUT_S + 1.0  # the timeout, then at most as long lingering
    assert answer.startswith(b"HTTP/1.1 408"), answer


async def test_a_prompt_client_is_served_by_the_same_runner(served: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*served)
    body = b'{"name": "x"}'
    writer.write(
        b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer


async def test_api_answers_are_not_stored_by_caches(client: Client) -> None:
    for resp in (
        await client.post("/api/echo", json={"name": "Eva"}),
        await client.post("/api/echo", json={"nope": 1}),  # an error
        await client.get("/api/nowhere"),  # aiohttp's own 404, in our shape
    ):
        assert resp.headers.get("Cache-Control") == "no-store", resp
    assert "Cache-Control" not in (await client.get("/healthz")).headers


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_body_that_is_not_json_is_415(client: Client, content_type: str) -> None:
    resp = await client.post(
        "/api/echo", data=b'{"name": "x"}', headers={"Content-Type": content_type}
    )
    err = (await resp.json())["error"]
    assert (resp.status, err["code"]) == (415, "unsupported_media_type")
    ok = await client.post(
        "/api/echo",
        data=b'{"name": "x"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status == 200


@pytest.mark.parametrize("path", ["/api/value-error", "/api/key-error"])
async def test_a_bare_error_from_our_code_is_500_and_shows_nothing(
    client: Client, path: str
) -> None:
    with capture_logs() as logs:
        resp = await client.get(path)
    err = (await resp.json())["error"]
    assert (resp.status, err["code"], err["message"]) == (500, "internal", "internal error")
    failed = [e for e in logs if e["event"] == "request_failed"]
    assert failed
    assert failed[0]["log_level"] == "error"
    assert failed[0].get("exc_info")


async def test_an_upstream_failure_is_502_with_its_code_not_an_internal_error(
    client: Client,
) -> None:
    with capture_logs() as logs:
        resp = await client.get("/api/upstream")
    err = (await resp.json())["error"]
    assert (resp.status, err["code"]) == (502, "oidc_provider")
    assert err["message"] == "the identity provider did not answer"
    assert [e["event"] for e in logs] == ["request_upstream_failed"]
    assert "exc_info" not in logs[0]


async def test_an_error_with_http_status_shows_its_message(client: Client) -> None:
    resp = await client.get("/api/invalid")
    err = (await resp.json())["error"]
    assert (resp.status, err["field"], err["message"]) == (422, "when", "when must be a date")


@pytest.mark.parametrize(
    ("remote", "headers", "token", "allowed"),
    [
        ("127.0.0.1", {}, "", True),
        ("::1", {}, "", True),
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}, "", False),  # relayed by a proxy
        ("127.0.0.1", {"Forwarded": "for=203.0.113.9"}, "", False),
        ("203.0.113.9", {}, "", False),
        ("10.0.0.7", {}, "", False),
        (None, {}, "", False),
        ("203.0.113.9", {"Authorization": "Bearer s3cret-metrics-token"}, "", False),
        (
            "203.0.113.9",
            {"Authorization": "Bearer s3cret-metrics-token"},
            "s3cret-metrics-token",
            True,
        ),
        ("203.0.113.9", {"Authorization": "Bearer wrong"}, "s3cret-metrics-token", False),
        ("203.0.113.9", {"Authorization": "s3cret-metrics-token"}, "s3cret-metrics-token", False),
    ],
)
def test_metrics_are_for_loopback_or_the_token(
    remote: str | None, headers: dict[str, str], token: str, allowed: bool
) -> None:
    assert metrics.may_scrape(remote, headers, token) is allowed
