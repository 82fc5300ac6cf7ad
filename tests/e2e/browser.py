"""Helpers for browser tests: Debian's Chromium under Playwright, the real backend as processes.

- :func:`launch` starts headless Chromium with the flags of ``../shared/RECIPES.md`` (real WebRTC
  on loopback; with ``media=True`` also a fake camera and microphone for two-way calls).
- :func:`fresh_database` clones the migrated template into a database for one test module.
- :class:`Backend` runs ``homecare serve`` (and :class:`Homes` runs ``homecare simulate``) as
  real processes with their own topic prefix, logs kept in a temporary file and shown on failure;
  ``backend(program=...)`` runs another program in its place with the same settings (the service
  on a clock the test moves: ``tests/e2e/stepped_serve.py``).
- :func:`frames_decoded` reads ``inbound-rtp.framesDecoded`` of the page's last WebRTC session
  through ``pc.getStats()``, polled from Python (``wait_for_function`` returns too early).
- :func:`screenshot` saves to ``test-artifacts/screenshots/``, git-ignored except the few kept
  in the repository (``.gitignore`` names them). Only the console's screens and simulated scenes
  are ever captured.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tests.procs import die_with_parent
from tools.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
HOMECARE = [sys.executable, "-m", "tools.cli"]

#: ../shared/RECIPES.md: real WebRTC in headless Chromium on loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
#: A page that sends its own camera and microphone (a two-way call).
MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def launch(playwright: Any, *, media: bool = False) -> Any:
    """Headless Chromium (Playwright's sync API) with the RECIPES flags."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS + (MEDIA_ARGS if media else []),
    )


# ---------------------------------------------------------------- database


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def fresh_database(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A database cloned from the migrated template, dropped afterwards (for module fixtures)."""
    name = f"hc_e2e_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    try:
        yield _with_db(pg_admin_url, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_db(database_url: str, work: Callable[[asyncpg.Connection], Any]) -> Any:
    """Run ``await work(conn)`` on a fresh connection (tests set up and inspect state)."""

    async def go() -> Any:
        conn = await asyncpg.connect(database_url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


def demo_accounts(database_url: str) -> dict[str, str]:
    """The demo staff accounts with fresh passwords: ``{username: password}``."""
    from identity.login import ensure_demo_accounts
    from services import db

    async def go() -> dict[str, str]:
        async with db.open_pool(database_url, max_size=2) as pool:
            return await ensure_demo_accounts(pool)

    return asyncio.run(go())


# ---------------------------------------------------------------- processes


@dataclass
class Process:
    """A ``homecare`` subprocess whose output goes to a temporary log file."""

    args: list[str]
    env: dict[str, str]
    name: str
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))
    program: list[str] = field(default_factory=lambda: list(HOMECARE))  # run with ``args``

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*self.program, *self.args],
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=ROOT,
                preexec_fn=die_with_parent,
            )

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, timeout_s: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def service_env(
    database_url: str, mqtt_url: str, prefix: str, port: int, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
    env.update(
        HOMECARE_DATABASE_URL=database_url,
        HOMECARE_MQTT_URL=mqtt_url,
        HOMECARE_MQTT_TOPIC_PREFIX=prefix,
        HOMECARE_HTTP_PORT=str(port),
        HOMECARE_MQTT_KEEPALIVE_S="2",
        HOMECARE_LOG_FORMAT="json",
        HOMECARE_LOG_LEVEL="info",
    )
    env.update(extra)
    return env


@dataclass
class Backend:
    """``homecare serve`` on a free port; ``url`` has no trailing slash."""

    url: str
    env: dict[str, str]
    database_url: str
    process: Process

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout_s) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()


@contextlib.contextmanager
def backend(
    database_url: str,
    mqtt_url: str,
    prefix: str,
    *,
    ready_timeout_s: float = 30.0,
    program: list[str] | None = None,
    **extra: str,
) -> Iterator[Backend]:
    """``homecare serve``, or ``program`` in its place (the same settings: a service on a clock
    the test moves, ``tests/e2e/stepped_serve.py``)."""
    port = free_port()
    env = service_env(database_url, mqtt_url, prefix, port, **extra)
    if program is None:
        process = Process(["serve"], env, "serve")
    else:
        process = Process([], env, "serve", program=program)
    process.start()
    served = Backend(f"http://127.0.0.1:{port}", env, database_url, process)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if not process.alive():
                raise AssertionError(f"homecare serve exited:\n{process.log_tail()}")
            with contextlib.suppress(OSError):
                if served.get("/readyz", timeout_s=1.0)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"homecare serve never ready:\n{process.log_tail()}")
            time.sleep(0.1)
        yield served
    finally:
        code = process.stop()
        if code not in (0, None):
            sys.stderr.write(f"homecare serve exited {code}:\n{process.log_tail()}\n")


@contextlib.contextmanager
def homes(env: dict[str, str], *args: str) -> Iterator[Process]:
    """``homecare simulate ARGS`` against the same broker and prefix as the backend."""
    process = Process(["simulate", *args], env, "simulate")
    process.start()
    try:
        yield process
    finally:
        process.stop()


class Api:
    """A staff member's JSON client: session cookie plus the CSRF header the server asks for."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def login(self, username: str, password: str) -> Api:
        status, body = self.call("POST", "/api/login", {"username": username, "password": password})
        assert status == 200, (status, body)
        return self

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        csrf = next((c.value for c in self.jar if c.name == "hc_csrf"), None)
        if csrf and method not in {"GET", "HEAD"}:
            headers["X-CSRF-Token"] = csrf
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=data, method=method, headers=headers
        )
        try:
            with self.opener.open(request, timeout=15) as r:
                raw = r.read()
                return int(r.status), json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return int(e.code), json.loads(raw)
            except ValueError:
                return int(e.code), raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: object = None) -> Any:
        """:meth:`call` that must succeed (2xx); returns the JSON body."""
        status, data = self.call(method, path, body)
        assert 200 <= status < 300, (method, path, status, data)
        return data


def http_status(url: str, timeout_s: float = 2.0) -> int:
    """The status of ``GET url`` (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``predicate`` every 0.1 s until it returns something truthy (generous timeouts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


# ---------------------------------------------------------------- pages


def login(page: Any, url: str, username: str, password: str) -> None:
    """Log in through the console's form and wait for the first screen."""
    page.goto(f"{url}/console/")
    page.get_by_label("Användarnamn").fill(username)
    page.get_by_label("Lösenord").fill(password)
    page.get_by_role("button", name="Logga in").click()
    page.locator("#top:not([hidden])").wait_for(timeout=10_000)


FRAMES_JS = """async () => {
  const s = window.homecareSignal && window.homecareSignal.last;
  if (!s || !s.pc) return -1;
  let frames = 0;
  (await s.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
  });
  return frames;
}"""


def frames_decoded(page: Any) -> int:
    """Decoded video frames of the page's last WebRTC session (-1: no peer connection)."""
    return int(page.evaluate(FRAMES_JS))


def wait_frames(page: Any, at_least: int, timeout_s: float) -> int:
    """Poll :func:`frames_decoded` until it reaches ``at_least``; return the count."""
    deadline = time.monotonic() + timeout_s
    frames = frames_decoded(page)
    while frames < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {frames} frames decoded in {timeout_s} s")
        time.sleep(0.05)
        frames = frames_decoded(page)
    return frames


CONTRAST_JS = """(el) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const [r, g, b, a = '1'] = m[1].split(/[ ,/]+/).filter(Boolean);
    return [Number(r), Number(g), Number(b), Number(a)];
  };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const fg = parse(getComputedStyle(el).color);
  let bg = null;
  for (let n = el; n; n = n.parentElement) {
    const c = parse(getComputedStyle(n).backgroundColor);
    if (c && c[3] > 0.5) { bg = c; break; }
  }
  bg = bg || [255, 255, 255, 1];
  const [l1, l2] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return (l1 + 0.05) / (l2 + 0.05);
}"""


def contrast(locator: Any) -> float:
    """WCAG contrast ratio of an element's text colour on its (nearest opaque) background, as the
    browser computed them."""
    return float(locator.evaluate(CONTRAST_JS))


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
