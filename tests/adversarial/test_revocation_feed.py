"""The revocation feed across processes, and its pure rules (issue 13, finding 1).

Two feeds on two pools of one database stand for two service processes: a change written through
either (or by hand in SQL) reaches the sockets watched in both, because the trigger notifies in
the change's own transaction. A feed whose listening connection was lost re-checks every socket
when it listens again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from identity import revocations, standing
from identity import store as staff_store
from identity.standing import Cause, Credential, Cutoff, Kind, Revocation
from kernel.retry import Backoff
from kernel.roles import SYSTEM_PRINCIPAL, Principal, Role
from services import db

T0 = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
TOKEN = Principal("staff-aaaa0001", Role.OPERATOR, via="token", session_id="tok0000001")
NAMELESS = Principal("staff-aaaa0001", Role.OPERATOR, via="token")  # names no credential
SESSION = Principal("staff-aaaa0001", Role.OPERATOR, via="session", session_id="sess-0001")


# ---------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("revocation", "principal", "cause"),
    [
        (Revocation(Kind.TOKEN_REVOKED, TOKEN.staff_id, "tok0000001"), TOKEN, Cause.TOKEN_REVOKED),
        (Revocation(Kind.TOKEN_REVOKED, TOKEN.staff_id, "tok0000002"), TOKEN, None),
        (Revocation(Kind.TOKEN_REVOKED, TOKEN.staff_id, "sess-0001"), SESSION, None),
        (Revocation(Kind.SESSION_ENDED, TOKEN.staff_id, "sess-0001"), SESSION, Cause.SESSION_ENDED),
        (Revocation(Kind.SESSION_ENDED, TOKEN.staff_id, "tok0000001"), TOKEN, None),
        (Revocation(Kind.STAFF_DEACTIVATED, TOKEN.staff_id), TOKEN, Cause.ACCOUNT_DEACTIVATED),
        (Revocation(Kind.STAFF_DEACTIVATED, TOKEN.staff_id), SESSION, Cause.ACCOUNT_DEACTIVATED),
        (Revocation(Kind.STAFF_REMOVED, TOKEN.staff_id), SESSION, Cause.ACCOUNT_DEACTIVATED),
        (Revocation(Kind.ROLE_CHANGED, TOKEN.staff_id), TOKEN, Cause.ROLE_CHANGED),
        (Revocation(Kind.STAFF_DEACTIVATED, "staff-bbbb0002"), TOKEN, None),
        (Revocation(Kind.STAFF_DEACTIVATED, "system"), SYSTEM_PRINCIPAL, None),
    ],
)
def test_a_revocation_cuts_exactly_the_sockets_it_names(
    revocation: Revocation, principal: Principal, cause: Cause | None
) -> None:
    expected = Cutoff(cause) if cause else None
    assert standing.cutoff_for(revocation, principal) == expected


def test_close_codes_say_log_in_again_or_not_allowed() -> None:
    assert Cutoff(Cause.TOKEN_REVOKED).code == 4401
    assert Cutoff(Cause.SESSION_ENDED).code == 4401
    assert Cutoff(Cause.SESSION_EXPIRED).code == 4401
    assert Cutoff(Cause.ACCOUNT_DEACTIVATED).code == 4403
    assert Cutoff(Cause.ROLE_CHANGED).code == 4403
    assert all(len(Cutoff(c).reason.encode()) <= 123 for c in Cause)


def _stored(**changes: object) -> Credential:
    base = {
        "staff_id": TOKEN.staff_id,
        "account_role": Role.OPERATOR,
        "is_active": True,
        "expires_at": T0 + timedelta(hours=1),
        "ended_at": None,
        "credential_role": Role.OPERATOR,
    }
    return Credential(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("principal", "found", "cause"),
    [
        (TOKEN, _stored(), None),
        (SESSION, _stored(credential_role=None), None),
        (TOKEN, None, Cause.CREDENTIAL_UNKNOWN),
        (TOKEN, _stored(staff_id="staff-bbbb0002"), Cause.CREDENTIAL_UNKNOWN),
        (
            Principal(TOKEN.staff_id, Role.OPERATOR, via="token"),
            _stored(),
            Cause.CREDENTIAL_UNKNOWN,
        ),
        (TOKEN, _stored(ended_at=T0), Cause.TOKEN_REVOKED),
        (SESSION, _stored(ended_at=T0), Cause.SESSION_ENDED),
        (TOKEN, _stored(is_active=False), Cause.ACCOUNT_DEACTIVATED),
        (TOKEN, _stored(account_role=Role.TECHNICIAN), Cause.ROLE_CHANGED),
        (TOKEN, _stored(credential_role=Role.ADMINISTRATOR), Cause.ROLE_CHANGED),
        (SESSION, _stored(account_role=Role.ADMINISTRATOR), Cause.ROLE_CHANGED),
        (TOKEN, _stored(expires_at=T0), Cause.TOKEN_EXPIRED),
        (SESSION, _stored(expires_at=T0 - timedelta(seconds=1)), Cause.SESSION_EXPIRED),
        (SYSTEM_PRINCIPAL, None, None),
    ],
)
def test_the_recheck_judges_the_stored_credential(
    principal: Principal, found: Credential | None, cause: Cause | None
) -> None:
    assert standing.judge(principal, found, T0) == (Cutoff(cause) if cause else None)


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "[]",
        '{"kind": "token_revoked", "staff_id": "s"}',  # a token revocation names the token
        '{"kind": "nope", "staff_id": "s"}',
        '{"kind": "role_changed", "staff_id": 7}',
        '{"kind": "role_changed", "staff_id": "' + "x" * 65 + '"}',
    ],
)
def test_an_unreadable_notification_is_refused(payload: str) -> None:
    with pytest.raises(ValueError, match="revocation"):
        standing.decode(payload)


# ---------------------------------------------------------------- two processes


@contextlib.asynccontextmanager
async def process(database_url: str) -> AsyncIterator[revocations.Revocations]:
    """One service process's feed, listening on its own pool."""
    async with db.open_pool(database_url, max_size=3) as pool:
        feed = revocations.Revocations(pool)
        ready = asyncio.Event()
        task = asyncio.create_task(
            feed.listen(ready=ready, backoff=Backoff(first_s=0.05, max_s=0.05))
        )
        try:
            await asyncio.wait_for(ready.wait(), 5)
            yield feed
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def operator_token(pool: asyncpg.Pool, username: str) -> Principal:
    async with pool.acquire() as conn:
        account = await staff_store.create_staff(
            conn, username=username, role=Role.OPERATOR, password=None, is_service=True
        )
        token = await staff_store.create_token(
            conn, staff_id=account.staff_id, role=Role.OPERATOR, ttl_s=600, label="feed test"
        )
        found = await staff_store.token_principal(conn, token, datetime.now(UTC))
    assert found is not None
    assert found.session_id == token.split("_")[1]  # the principal names its credential
    return found


@pytest.mark.integration
async def test_every_process_cuts_its_sockets_when_a_token_is_revoked(
    database_url: str, pool: asyncpg.Pool
) -> None:
    who = await operator_token(pool, "feed-op")
    other = await operator_token(pool, "feed-other")
    async with process(database_url) as a, process(database_url) as b:
        cut: dict[str, asyncio.Future[Cutoff]] = {}
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:
            for name, feed, principal in (("a", a, who), ("b", b, who), ("other", a, other)):
                cut[name] = loop.create_future()
                await stack.enter_async_context(feed.watch(principal, cut[name].set_result))
            assert (a.watched, b.watched) == (2, 1)
            started = loop.time()
            async with pool.acquire() as conn:
                await staff_store.revoke_token(conn, token_id=str(who.session_id), actor="admin")
            done = await asyncio.wait_for(asyncio.gather(cut["a"], cut["b"]), 1.0)
            assert done == [Cutoff(Cause.TOKEN_REVOKED)] * 2
            assert loop.time() - started < 1.0
            assert not cut["other"].done()  # another member's socket stays
        assert (a.watched, b.watched) == (0, 0)


@pytest.mark.integration
async def test_a_role_changed_by_hand_in_sql_cuts_the_socket(
    database_url: str, pool: asyncpg.Pool
) -> None:
    who = await operator_token(pool, "role-op")
    async with process(database_url) as feed:
        loop = asyncio.get_running_loop()
        cut: asyncio.Future[Cutoff] = loop.create_future()
        async with feed.watch(who, cut.set_result):
            await pool.execute(
                "UPDATE staff SET role = 'technician' WHERE staff_id = $1", who.staff_id
            )
            assert await asyncio.wait_for(cut, 1.0) == Cutoff(Cause.ROLE_CHANGED)
            assert cut.result().code == 4403


@pytest.mark.integration
async def test_a_lost_listener_resyncs_every_socket_when_it_listens_again(
    database_url: str, pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    """Seeing other connections' queries, switching triggers off and ending a backend are the
    schema owner's rights, not the service's: those steps go through ``owner``."""
    who = await operator_token(pool, "resync-op")
    async with process(database_url) as feed:
        loop = asyncio.get_running_loop()
        cut: asyncio.Future[Cutoff] = loop.create_future()
        async with feed.watch(who, cut.set_result):
            # The listening connection is killed; meanwhile the token is revoked (the
            # notification goes to no one).
            listeners = await owner.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE 'LISTEN%'"
            )
            assert listeners
            async with owner.transaction():
                await owner.execute("SET LOCAL session_replication_role = replica")
                revoked = await owner.execute(
                    "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1", who.session_id
                )
                assert revoked == "UPDATE 1"
            for row in listeners:
                assert await owner.fetchval("SELECT pg_terminate_backend($1)", row["pid"])
            assert await asyncio.wait_for(cut, 5.0) == Cutoff(Cause.TOKEN_REVOKED)


@pytest.mark.integration
async def test_a_socket_opened_after_the_revocation_is_cut_at_once(pool: asyncpg.Pool) -> None:
    """The handshake authenticated, then the token was revoked before the watch began: the
    watch's first read sees it (no notification needed)."""
    who = await operator_token(pool, "late-op")
    async with pool.acquire() as conn:
        await staff_store.revoke_token(conn, token_id=str(who.session_id), actor="admin")
    feed = revocations.Revocations(pool)  # not even listening
    seen: list[Cutoff] = []
    async with feed.watch(who, seen.append):
        assert seen == [Cutoff(Cause.TOKEN_REVOKED)]
        assert await feed.check(who) == Cutoff(Cause.TOKEN_REVOKED)
