"""Schemathesis against ``/api/openapi.json`` of the composed application: whatever it sends to any
route, as an administrator, as an operator and without a login, the answer is never a 5xx.

The service runs in this test's event loop on a loopback port; schemathesis runs as its own
process (its client is synchronous) with a time budget per caller: 8 s in the suite (every
operation's examples and coverage cases first, then random cases until the budget is spent;
hundreds of cases per caller), ``HOMECARE_FUZZ_SECONDS=120`` for a longer run (a nightly job, say).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from identity import store as staff_store
from kernel.roles import Role
from services import app
from services.settings import load

pytestmark = pytest.mark.integration

BUDGET_S = int(os.environ.get("HOMECARE_FUZZ_SECONDS", "8"))  # per caller (one test each)


@dataclasses.dataclass
class Served:
    url: str
    tokens: dict[Role, str]


@pytest.fixture
async def served(database_url: str, mqtt_url: str, topic_prefix: str) -> AsyncIterator[Served]:
    settings = dataclasses.replace(
        load({}),
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        http_rate_per_s=100_000,
        http_rate_burst=100_000,
    )
    async with app.runtime(settings) as rt:
        tokens = {}
        async with rt.pool.acquire() as conn:
            for role in (Role.ADMINISTRATOR, Role.OPERATOR):
                account = await staff_store.create_staff(
                    conn, username=f"fuzz-{role.value}", role=role, password=None, is_service=True
                )
                tokens[role] = await staff_store.create_token(
                    conn, staff_id=account.staff_id, role=role, ttl_s=3600, label="fuzz"
                )
        async with TestServer(rt.app, host="127.0.0.1") as server:
            yield Served(str(server.make_url("")).rstrip("/"), tokens)


def _schemathesis() -> list[str]:
    found = Path(sys.executable).with_name("st")
    if found.exists():
        return [str(found)]
    if shutil.which("st"):
        return ["st"]
    pytest.fail("schemathesis is not installed (pip install -e '.[dev]')")


async def _fuzz(served: Served, workdir: Path, header: str | None) -> tuple[int, str]:
    args = [
        *_schemathesis(),
        "run",
        f"{served.url}/api/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-time",
        str(BUDGET_S),
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--max-redirects",
        "0",
        "--suppress-health-check",
        "all",
        "--seed",
        "8",
    ]
    if header:
        args += ["-H", header]
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
    )
    try:
        async with asyncio.timeout(BUDGET_S + 90):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.parametrize(
    "who", [Role.ADMINISTRATOR, Role.OPERATOR, None], ids=lambda w: str(w or "anonymous")
)
async def test_no_input_gives_a_server_error(
    served: Served, tmp_path: Path, who: Role | None
) -> None:
    """One caller per test (each within its time budget): administrator, operator, anonymous."""
    header = None if who is None else f"Authorization: Bearer {served.tokens[who]}"
    rc, out = await _fuzz(served, tmp_path, header)
    tail = out[-15000:]
    assert rc == 0, f"schemathesis as {who or 'anonymous'} found failures:\n{tail}"
    found = re.search(r"(\d+) generated, (\d+) passed", out)
    assert found, tail
    generated, passed = int(found[1]), int(found[2])
    print(f"\nschemathesis as {who or 'anonymous'}: {generated} cases, {passed} passed, no 5xx")
    assert generated >= 50
    assert passed == generated
