"""PaaS swarm: the public face.

`create_product_upload_workflow` and `recover_and_resume_workflow` are the
seed's workflow API (`swarm.workflow_api`). They are imported on first use,
so importing a `swarm` module (an agent's Ray worker unpickling its writer)
does not pay for the API's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarm.workflow_api import create_product_upload_workflow, recover_and_resume_workflow

__all__ = ["create_product_upload_workflow", "recover_and_resume_workflow"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from swarm import workflow_api

        return getattr(workflow_api, name)
    raise AttributeError(f"module 'swarm' has no attribute {name!r}")
