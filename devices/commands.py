"""Commands to devices over ``cmd`` with acknowledgement on ``cmd/ack``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog

from devices import store, topics
from devices.errors import UnknownDevice
from devices.handler import DeviceHandler

log = structlog.get_logger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]


class CommandTimeout(TimeoutError):
    """The device did not acknowledge the command in time."""

    http_status = 504
    code = "device_timeout"


class Commands:
    def __init__(
        self, pool: asyncpg.Pool, handler: DeviceHandler, publish: Publish, prefix: str
    ) -> None:
        self._pool = pool
        self._handler = handler
        self._publish = publish
        self._prefix = prefix

    async def send(
        self,
        device_id: str,
        op: topics.CommandOp,
        args: dict[str, Any] | None = None,
        timeout_s: float = 5.0,
    ) -> topics.CommandAck:
        """Publish a command and wait for the device's ack (``CommandTimeout`` if none)."""
        command = topics.Command(id=uuid.uuid4().hex[:16], op=op, args=args or {})
        # the waiter is there before the command goes: its ack may come before the PUBACK
        waiter = self._handler.expect_ack(command.id, device_id)
        try:
            if not await store.record_command(self._pool, command.id, device_id, op.value):
                raise UnknownDevice(device_id)
            await self._publish(
                topics.topic(self._prefix, device_id, topics.Channel.CMD), command.encode()
            )
            ack = await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            log.warning("device_command_unacked", device_id=device_id, op=op.value)
            raise CommandTimeout(f"{device_id} did not acknowledge {op.value}") from None
        finally:
            self._handler.forget_ack(command.id)
        log.info("device_command_acked", device_id=device_id, op=op.value, ok=ack.ok)
        return ack
