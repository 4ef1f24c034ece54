"""In-process message transport: agents on one event loop, pushing to each other directly.

The counterpart of `actors.ray_actors.RayTransport` for agents that live in
the same process (the workflow API, tests). It keeps the same promise: a push
is only a shortcut, the message itself is already durable in its recipient's
mailbox. So a push to an agent that is not attached (not started yet, or
dead) is held for an expected agent and handed over, as a redelivery checked
against the log, when it attaches; for any other recipient it is dropped and
the message waits in the mailbox for the recipient's next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol


class Recipient(Protocol):
    name: str

    async def deliver(self, bodies: list[str], *, redelivery: bool = False) -> int: ...


class LocalTransport:
    def __init__(self, expected: Iterable[str] = ()) -> None:
        self._agents: dict[str, Recipient] = {}
        self._held: dict[str, list[str]] = {name: [] for name in expected}
        self._tasks: set[asyncio.Task[int]] = set()

    def attach(self, agent: Recipient) -> None:
        """`agent` takes pushes from now on; what was held for it is redelivered."""
        self._agents[agent.name] = agent
        held = self._held.pop(agent.name, [])
        if held:
            self._push(agent, held, redelivery=True)

    def detach(self, name: str) -> None:
        """`name` takes no more pushes (it died); its messages stay in its mailbox."""
        self._agents.pop(name, None)

    def send(self, recipient: str, bodies: list[str]) -> None:
        agent = self._agents.get(recipient)
        if agent is not None:
            self._push(agent, bodies, redelivery=False)
        elif recipient in self._held:
            self._held[recipient].extend(bodies)

    def _push(self, agent: Recipient, bodies: list[str], *, redelivery: bool) -> None:
        task = asyncio.ensure_future(agent.deliver(bodies, redelivery=redelivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel pushes still under way and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
