"""Schemathesis against ``/api/openapi.json`` of the composed application: whatever it sends to any
route, as an administrator, as an operator, as a technician and without a login, the answer is
never a 5xx. Together these callers may call every operation of the document
(:func:`test_every_operation_is_fuzzed_by_a_caller`): the other roles' operations are all an
administrator's or an operator's too, but the technician's installations are only theirs.

Each caller fuzzes the operations it may call (the document's ``x-roles``; public ones for every
caller): one it may not is refused by the auth middleware, 401 or 403, before a handler or its
body reader runs, the same branch for any input, which
``tests/integration/test_access_every_route.py`` proves per route and role.

The service runs in this test's event loop on a loopback port; schemathesis runs as its own
process (its client is synchronous). In the suite each caller gets every operation's examples and
coverage cases and :data:`SUITE_EXAMPLES` random cases per operation (a count, so load cannot
thin it out); ``HOMECARE_FUZZ_SECONDS=120`` turns it into a time budget for a longer run (a
nightly job, say).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from identity import store as staff_store
from kernel.roles import Role
from services import app
from services.settings import load

pytestmark = pytest.mark.integration

CALLERS = (Role.ADMINISTRATOR, Role.OPERATOR, Role.TECHNICIAN)
"""The roles the fuzzer calls as (besides no login)."""
BUDGET_S = int(os.environ.get("HOMECARE_FUZZ_SECONDS", "0"))  # per caller; 0: the suite's count
SUITE_EXAMPLES = 2
"""Random cases per operation in the suite, after every operation's examples and coverage cases: a
count, not a time budget, so a loaded machine makes the test slower, never weaker."""


@dataclasses.dataclass
class Served:
    url: str
    tokens: dict[Role, str]
    doc: dict[str, Any]  # /api/openapi.json as the service serves it


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
            for role in CALLERS:
                account = await staff_store.create_staff(
                    conn, username=f"fuzz-{role.value}", role=role, password=None, is_service=True
                )
                tokens[role] = await staff_store.create_token(
                    conn, staff_id=account.staff_id, role=role, ttl_s=3600, label="fuzz"
                )
        async with TestServer(rt.app, host="127.0.0.1") as server:
            url = str(server.make_url("")).rstrip("/")
            async with aiohttp.ClientSession() as http, http.get(f"{url}/api/openapi.json") as r:
                doc = await r.json()
            yield Served(url, tokens, doc)


def _schemathesis() -> list[str]:
    found = Path(sys.executable).with_name("st")
    if found.exists():
        return [str(found)]
    if shutil.which("st"):
        return ["st"]
    pytest.fail("schemathesis is not installed (pip install -e '.[dev]')")


def callable_by(doc: dict[str, Any], who: Role | None) -> dict[str, Any]:
    """The document with only the operations ``who`` may call (public ones for anyone).

    Any other operation answers ``who`` 401 or 403 from the auth middleware before its handler
    reads a byte (test_access_every_route proves that for each route and role): fuzzing it
    would test that one branch many times over."""
    allowed = {"public", *([who.value] if who else [])}
    paths = {}
    for path, ops in doc["paths"].items():
        kept = {
            method: op
            for method, op in ops.items()
            if not isinstance(op, dict) or "x-roles" not in op or allowed & set(op["x-roles"])
        }
        if any(isinstance(op, dict) and "x-roles" in op for op in kept.values()):
            paths[path] = kept
    return {**doc, "paths": paths}


async def _fuzz(served: Served, workdir: Path, who: Role | None) -> tuple[int, str]:
    schema = workdir / "openapi.json"
    schema.write_text(json.dumps(callable_by(served.doc, who)))
    args = [
        *_schemathesis(),
        "run",
        str(schema),
        "--url",
        served.url,
        "--checks",
        "not_a_server_error",
        *(["--max-time", str(BUDGET_S)] if BUDGET_S else ["--max-examples", str(SUITE_EXAMPLES)]),
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
    if who is not None:
        args += ["-H", f"Authorization: Bearer {served.tokens[who]}"]
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
    )
    try:
        async with asyncio.timeout(BUDGET_S + 120):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(errors="replace")


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if isinstance(op, dict) and "x-roles" in op
    }


async def test_every_operation_is_fuzzed_by_a_caller(served: Served) -> None:
    fuzzed = set().union(*(_operations(callable_by(served.doc, w)) for w in (*CALLERS, None)))
    assert _operations(served.doc) - fuzzed == set()


@pytest.mark.parametrize("who", [*CALLERS, None], ids=lambda w: str(w or "anonymous"))
async def test_no_input_gives_a_server_error(
    served: Served, tmp_path: Path, who: Role | None
) -> None:
    """One caller per test (each within its time budget): administrator, operator, technician,
    anonymous."""
    rc, out = await _fuzz(served, tmp_path, who)
    tail = out[-15000:]
    assert rc == 0, f"schemathesis as {who or 'anonymous'} found failures:\n{tail}"
    found = re.search(r"(\d+) generated, (\d+) passed", out)
    assert found, tail
    generated, passed = int(found[1]), int(found[2])
    print(f"\nschemathesis as {who or 'anonymous'}: {generated} cases, {passed} passed, no 5xx")
    assert generated >= (50 if who else 10)
    assert passed == generated
    kept = callable_by(served.doc, who)["paths"].values()
    ops = sum(isinstance(op, dict) and "x-roles" in op for path in kept for op in path.values())
    assert f"Tested: {ops}\n" in out, tail  # every operation the caller may call was fuzzed
