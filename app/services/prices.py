"""Built-in list prices (USD per 1M tokens) for well-known models.

Offered when an admin creates or imports a model without prices; the admin's values in the DB
always win and are what cost is computed from. Prices are public list prices as published by
each vendor (late 2025); check them against your contract.
"""
from __future__ import annotations

import re
from decimal import Decimal

# id prefix -> (input, output, cached input or None)
_TABLE: dict[str, tuple[str, str, str | None]] = {
    "gpt-4o-mini": ("0.15", "0.60", "0.075"),
    "gpt-4o": ("2.50", "10.00", "1.25"),
    "gpt-4.1-nano": ("0.10", "0.40", "0.025"),
    "gpt-4.1-mini": ("0.40", "1.60", "0.10"),
    "gpt-4.1": ("2.00", "8.00", "0.50"),
    "gpt-4-turbo": ("10.00", "30.00", None),
    "gpt-3.5-turbo": ("0.50", "1.50", None),
    "o4-mini": ("1.10", "4.40", "0.275"),
    "o3-mini": ("1.10", "4.40", "0.55"),
    "o3": ("2.00", "8.00", "0.50"),
    "o1-mini": ("1.10", "4.40", "0.55"),
    "o1": ("15.00", "60.00", "7.50"),
    "text-embedding-3-small": ("0.02", "0", None),
    "text-embedding-3-large": ("0.13", "0", None),
    "text-embedding-ada-002": ("0.10", "0", None),
    "claude-opus-4": ("15.00", "75.00", "1.50"),
    "claude-sonnet-4": ("3.00", "15.00", "0.30"),
    "claude-3-7-sonnet": ("3.00", "15.00", "0.30"),
    "claude-3-5-sonnet": ("3.00", "15.00", "0.30"),
    "claude-3-5-haiku": ("0.80", "4.00", "0.08"),
    "claude-haiku-4-5": ("1.00", "5.00", "0.10"),
    "claude-3-opus": ("15.00", "75.00", "1.50"),
    "claude-3-haiku": ("0.25", "1.25", "0.03"),
    "grok-3-mini": ("0.30", "0.50", None),
    "grok-3": ("3.00", "15.00", None),
    "grok-4": ("3.00", "15.00", "0.75"),
    "deepseek-chat": ("0.27", "1.10", "0.07"),
    "deepseek-reasoner": ("0.55", "2.19", "0.14"),
    "mistral-large": ("2.00", "6.00", None),
    "mistral-small": ("0.10", "0.30", None),
    "llama-3.1-8b-instant": ("0.05", "0.08", None),
    "llama-3.3-70b-versatile": ("0.59", "0.79", None),
    "amazon.titan-embed-text-v2": ("0.02", "0", None),
    "cohere.embed-english-v3": ("0.10", "0", None),
    "cohere.embed-multilingual-v3": ("0.10", "0", None),
}
_ORDER = sorted(_TABLE, key=len, reverse=True)  # longest prefix wins: gpt-4o-mini before gpt-4o
_REGION = re.compile(r"^(?:us|eu|apac|global)\.")
_VENDOR = re.compile(r"^(?:anthropic|openai|meta|mistral|amazon\.(?=nova))\.")


def normalise(model_id: str) -> str:
    """Strip routing prefixes (Bedrock region/vendor, OpenRouter `org/`) and case."""
    name = model_id.strip().lower()
    name = name.rsplit("/", 1)[-1]
    name = _REGION.sub("", name)
    name = _VENDOR.sub("", name)
    return name


def lookup(model_id: str) -> dict[str, Decimal | None] | None:
    name = normalise(model_id)
    for prefix in _ORDER:
        if name.startswith(prefix):
            inp, out, cached = _TABLE[prefix]
            return {"input_price_per_mtok": Decimal(inp), "output_price_per_mtok": Decimal(out),
                    "cached_input_price_per_mtok": Decimal(cached) if cached else None,
                    "matched": prefix}
    return None
