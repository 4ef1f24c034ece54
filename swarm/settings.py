"""Settings, read once at the entry point from `SWARM_*` variables and `.env`.

Every setting has a `SWARM_` variable; the OpenAI key and base URL are also
read from the standard `OPENAI_API_KEY` and `OPENAI_BASE_URL`, and the Ray
address from `RAY_ADDRESS`. Lower layers never read the environment: they get
the small config objects built here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SAMPLE_CATALOG = Path(__file__).parent / "sample_data" / "catalog.csv"


class SwarmSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SWARM_", env_file=".env", extra="ignore", frozen=True
    )

    db_path: Path = Path("data/swarm.db")
    db_synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL"
    """SQLite `synchronous`: FULL makes each commit durable against power loss."""
    ray_address: str | None = Field(
        default=None, validation_alias=AliasChoices("SWARM_RAY_ADDRESS", "RAY_ADDRESS")
    )
    product_agents: int = Field(default=2, ge=1, le=64)
    marketing_agents: int = Field(default=1, ge=1, le=64)
    snapshot_every: int = Field(default=2_000, ge=1)
    effect_concurrency: int = Field(default=64, ge=1)
    """LLM and marketplace calls in flight per agent."""
    step_attempts: int = Field(default=3, ge=1)
    retry_backoff_s: float = Field(default=0.2, ge=0)
    retry_deadline_s: float = Field(default=60.0, gt=0)
    """How long agents keep retrying the journal or a peer that is down."""
    submit_chunk: int = Field(default=500, ge=1)
    max_in_flight: int = Field(default=500, ge=1)
    """Workflows in the swarm at once; submitting more waits for room (flat memory)."""

    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 60.0
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SWARM_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SWARM_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )

    marketplace_url: str | None = None
    """Set to publish to a REST marketplace; unset uses the local catalog table."""
    marketplace_token: SecretStr | None = None
    marketplace_timeout_s: float = 10.0
