"""What an LLM call costs: prices per model, and the cost of one call's token usage.

Prices are USD per million tokens, input and output apart, as the providers
publish them. A model is priced by its exact name, else by the longest priced
name it starts with followed by "-" (so `gpt-4o-mini` prices the dated
snapshot `gpt-4o-mini-2024-07-18` the API reports). A model with no price
costs 0 and is reported as unpriced, never guessed.
"""

from __future__ import annotations

from pydantic import Field

from actors.models import FrozenModel, TokenUsage

MILLION = 1_000_000


class ModelPrice(FrozenModel):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class CallCost(FrozenModel):
    usd: float
    priced: bool
    """False when no price matched the model: `usd` is 0, not an estimate."""


class PriceTable(FrozenModel):
    prices: dict[str, ModelPrice] = Field(default_factory=dict)

    def price_of(self, model: str) -> ModelPrice | None:
        exact = self.prices.get(model)
        if exact is not None:
            return exact
        prefixes = [name for name in self.prices if model.startswith(f"{name}-")]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, model: str, usage: TokenUsage) -> CallCost:
        price = self.price_of(model)
        if price is None:
            return CallCost(usd=0.0, priced=False)
        usd = (usage.input_tokens * price.input + usage.output_tokens * price.output) / MILLION
        return CallCost(usd=usd, priced=True)
