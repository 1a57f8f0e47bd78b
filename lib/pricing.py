"""What model calls cost: a price table per model, and a row's tokens priced by stage.

Prices are USD per million tokens, input and output apart, as the providers publish
them. The default table covers the models the providers in `lib/providers` use by
default; `MODEL_PRICES` (a JSON object `{"model": {"input": 0.4, "output": 1.6}}`)
adds models or replaces prices. A model that is not in the table costs 0 and is named
in the row's `cost.unpriced` (and in the batch summary), so an estimate is never
silently low without saying so.

A dated model name (`gpt-4.1-mini-2025-04-14`) takes the price of its longest listed
prefix (`gpt-4.1-mini`), the way providers name snapshots.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# USD per million tokens (input, output). Offline and stand-in models cost nothing.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "offline": (0.0, 0.0),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-opus-4-1": (15.00, 75.00),
}
PER_TOKENS = 1_000_000
MAX_PRICE = 10_000.0  # USD per million tokens: anything above is a typo


def parse_prices(text: str | None) -> dict[str, tuple[float, float]]:
    """The `MODEL_PRICES` JSON as a table; raises ValueError saying what is wrong."""
    if not text or not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise ValueError('expected an object like {"gpt-4.1-mini": {"input": 0.4, "output": 1.6}}')  # noqa: TRY004 - a bad setting
    prices: dict[str, tuple[float, float]] = {}
    for model, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) - {"input", "output"}:
            raise ValueError(f"{model!r} must be an object with 'input' and 'output'")
        pair = []
        for side in ("input", "output"):
            value = entry.get(side, 0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_PRICE:
                raise ValueError(f"{model!r} {side} must be a number from 0 to {MAX_PRICE:g}")
            pair.append(float(value))
        prices[str(model).strip()] = (pair[0], pair[1])
    return prices


@dataclass(frozen=True)
class RowCost:
    """Tokens and dollars of one row, every model call counted (pipeline stages and judges)."""

    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    unpriced: tuple[str, ...] = ()

    def to_doc(self) -> dict[str, Any]:
        return {"inputTokens": self.input_tokens, "outputTokens": self.output_tokens, "usd": round(self.usd, 8),
                "unpriced": list(self.unpriced)}


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, tuple[float, float]]) -> PriceTable:
        return cls({**DEFAULT_PRICES, **overrides})

    def price_of(self, model: str | None) -> tuple[float, float] | None:
        """(input, output) USD per million tokens, or None for a model not in the table."""
        if not model:
            return None
        if model in self.prices:
            return self.prices[model]
        prefixes = [name for name in self.prices if model.startswith(name + "-")]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, model: str | None, input_tokens: int, output_tokens: int) -> float | None:
        """USD of one call, or None when the model has no price."""
        price = self.price_of(model)
        if price is None:
            return None
        return (input_tokens * price[0] + output_tokens * price[1]) / PER_TOKENS

    def row_cost(self, by_stage: Mapping[str, Mapping[str, Any]], *, fallback_model: str | None = None,
                 input_tokens: int = 0, output_tokens: int = 0) -> RowCost:
        """A row's cost from its tokens by stage (`{stage: {model, inputTokens, outputTokens}}`).

        A row with totals but no stages (a refusal in the step) is priced at `fallback_model`,
        the batch's answer model.
        """
        total_in = total_out = 0
        usd = 0.0
        unpriced: set[str] = set()
        entries = list(by_stage.values())
        if not entries and (input_tokens or output_tokens):
            entries = [{"model": fallback_model, "inputTokens": input_tokens, "outputTokens": output_tokens}]
        for entry in entries:
            used_in, used_out = int(entry.get("inputTokens") or 0), int(entry.get("outputTokens") or 0)
            model = entry.get("model") or fallback_model
            total_in += used_in
            total_out += used_out
            spent = self.cost(model, used_in, used_out)
            if spent is None:
                if used_in or used_out:
                    unpriced.add(str(model or "unknown"))
            else:
                usd += spent
        return RowCost(total_in, total_out, usd, tuple(sorted(unpriced)))

    def to_doc(self) -> dict[str, dict[str, float]]:
        """The table as `options` shows it: USD per million tokens."""
        return {model: {"input": p[0], "output": p[1]} for model, p in sorted(self.prices.items())}
