"""Child specifications: what the supervisor starts, in which order, and how it restarts it.

Child specs are data, as in Erlang/OTP: the supervisor starts children in list
order and stops them in reverse order. `restart` follows OTP: a `permanent`
child is always restarted, a `transient` one only after an abnormal exit, a
`temporary` one never.
"""

from __future__ import annotations

from typing import Literal

from actors.models import FrozenModel
from actors.ray_actors import AgentSpec


class JournalSpec(FrozenModel):
    path: str
    synchronous: str = "FULL"


class ChildSpec(FrozenModel):
    model_config = FrozenModel.model_config | {"arbitrary_types_allowed": True}

    name: str
    """The actor's name in the swarm namespace: what the dashboard shows."""
    role: str
    restart: Literal["permanent", "transient", "temporary"] = "permanent"
    journal: JournalSpec | None = None
    agent: AgentSpec | None = None
    max_concurrency: int = 4_000
    node_id: str | None = None
    """Run on this Ray node while it is up, elsewhere once it is gone (the journal: where
    its file is)."""
