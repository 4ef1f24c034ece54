"""Settings, read once at the entry point from `SWARM_*` variables and `.env`.

Every setting has a `SWARM_` variable; the OpenAI key and base URL are also
read from the standard `OPENAI_API_KEY` and `OPENAI_BASE_URL`, and the Ray
address from `RAY_ADDRESS`. Lower layers never read the environment: they get
the small config objects built here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from actors.llm_pricing import ModelPrice, PriceTable
from swarm.feed_results import FeedLimits
from swarm.llm_offline import OFFLINE_MODEL_NAME

SAMPLE_CATALOG = Path(__file__).parent / "sample_data" / "catalog.csv"

DEFAULT_LLM_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
    "gpt-4o": ModelPrice(input=2.50, output=10.00),
    OFFLINE_MODEL_NAME: ModelPrice(input=0.0, output=0.0),
}
"""USD per million tokens; `SWARM_LLM_PRICES` adds models or overrides these."""


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
    commit_linger_ms: float = Field(default=10.0, ge=0)
    """How long an agent's small commit waits for more work to share it: LLM calls that
    finish one by one then share journal calls and pushes (0: commit at once)."""
    row_delay_ms: float = Field(default=250.0, ge=0)
    """How long a running product or marketing agent may hold back the workflows view's
    row of a workflow it took or moved on a step: a busy agent's workflows pass through
    their steps in less, so most such rows are never written (0: every step at once).
    Submissions, waits, failures and outcomes are written with the events that cause them."""
    effect_concurrency: int = Field(default=64, ge=1)
    """LLM and marketplace calls in flight per agent."""
    step_attempts: int = Field(default=3, ge=1)
    retry_backoff_s: float = Field(default=0.2, ge=0)
    wait_max_s: float = Field(default=30.0, gt=0)
    """Longest pause between tries of a step whose endpoint stays down (status `waiting`)."""
    retry_deadline_s: float = Field(default=60.0, gt=0)
    """How long agents keep retrying the journal or a peer that is down."""
    submit_chunk: int = Field(default=500, ge=1)
    max_in_flight: int = Field(default=500, ge=1)
    """Workflows in the swarm at once; submitting more waits for room (flat memory)."""

    supervisor_strategy: Literal["one_for_one", "one_for_all", "rest_for_one"] = "one_for_one"
    restart_intensity: int = Field(default=20, ge=0)
    """At most this many restarts ..."""
    restart_period_s: float = Field(default=10.0, gt=0)
    """... within this many seconds; past it the supervisor escalates and stops the swarm."""
    restart_backoff_s: float = Field(default=0.01, ge=0)
    restart_backoff_max_s: float = Field(default=0.5, ge=0)
    restart_types: dict[str, Literal["permanent", "transient", "temporary"]] = Field(
        default_factory=dict
    )
    """Restart type per role (JSON, e.g. {"marketing-agent-0": "transient"}); default permanent."""
    agent_node: str | None = None
    """Ray node id the agents prefer (soft affinity); the journal runs on the driver's node."""
    warm_standby: bool = True
    """An idle process per role, ready to take it over when its actor dies."""
    poison_attempts: int = Field(default=3, ge=1)
    """A workflow that kills its agent this many times is quarantined to dead letters."""

    offline_llm_latency_s: float = Field(default=0.0, ge=0)
    """The offline writer waits this long per call, as a model would (demos, chaos runs)."""
    feed_max_field_chars: int = Field(default=20_000, ge=1)
    """Longest value a feed field may hold (Body (HTML) included); longer is a problem."""
    feed_max_title_chars: int = Field(default=255, ge=1)
    feed_max_products: int = Field(default=1_000_000, ge=1)
    """Products one feed may hold; past it the whole feed is refused."""

    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 60.0
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SWARM_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SWARM_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )
    llm_requests_per_minute: int = Field(default=0, ge=0)
    """Swarm-wide LLM requests per minute (one limiter actor for every process); 0: none."""
    llm_tokens_per_minute: int = Field(default=0, ge=0)
    """Swarm-wide LLM tokens per minute (estimated, then settled with the usage); 0: none."""
    llm_prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_LLM_PRICES))
    """Model -> {"input": USD, "output": USD} per million tokens, as JSON in SWARM_LLM_PRICES."""

    marketplace_url: str | None = None
    """Set to publish to a REST marketplace; unset uses the local catalog table."""
    marketplace_token: SecretStr | None = None
    marketplace_timeout_s: float = 10.0

    def feed_limits(self) -> FeedLimits:
        """The bounds the feed parsers apply, from the `SWARM_FEED_*` settings."""
        return FeedLimits(
            max_field_chars=self.feed_max_field_chars,
            max_title_chars=self.feed_max_title_chars,
            max_products=self.feed_max_products,
        )

    @field_validator("llm_prices")
    @classmethod
    def _over_default_prices(cls, prices: dict[str, ModelPrice]) -> dict[str, ModelPrice]:
        return {**DEFAULT_LLM_PRICES, **prices}

    @property
    def price_table(self) -> PriceTable:
        return PriceTable(prices=self.llm_prices)
