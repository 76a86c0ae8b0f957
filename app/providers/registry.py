"""Provider type -> adapter class, OpenAI-compatible presets, and the adapter factory."""
from __future__ import annotations

import dataclasses
from typing import Any

from .anthropic import AnthropicAdapter
from .azure import AzureOpenAIAdapter
from .base import Adapter, ProviderConfig
from .bedrock import BedrockAdapter
from .ollama import OllamaAdapter
from .openai import OpenAIAdapter, OpenAICompatibleAdapter, XAIAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    "openai": OpenAIAdapter,
    "openai-compatible": OpenAICompatibleAdapter,
    "azure-openai": AzureOpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "ollama": OllamaAdapter,
    "bedrock": BedrockAdapter,
    "xai": XAIAdapter,
}

# OpenAI-compatible services: the console pre-fills api_base from these. `requires_key` is False
# for servers that normally run locally without auth.
PRESETS: dict[str, dict[str, Any]] = {
    "xai": {"label": "xAI (Grok)", "api_base": "https://api.x.ai/v1",
            "type": "openai-compatible", "requires_key": True},
    "groq": {"label": "Groq", "api_base": "https://api.groq.com/openai/v1",
             "type": "openai-compatible", "requires_key": True},
    "mistral": {"label": "Mistral AI", "api_base": "https://api.mistral.ai/v1",
                "type": "openai-compatible", "requires_key": True},
    "deepseek": {"label": "DeepSeek", "api_base": "https://api.deepseek.com/v1",
                 "type": "openai-compatible", "requires_key": True},
    "openrouter": {"label": "OpenRouter", "api_base": "https://openrouter.ai/api/v1",
                   "type": "openai-compatible", "requires_key": True},
    "together": {"label": "Together AI", "api_base": "https://api.together.xyz/v1",
                 "type": "openai-compatible", "requires_key": True},
    "vllm": {"label": "vLLM (local)", "api_base": "http://localhost:8000/v1",
             "type": "openai-compatible", "requires_key": False},
    "lmstudio": {"label": "LM Studio (local)", "api_base": "http://localhost:1234/v1",
                 "type": "openai-compatible", "requires_key": False},
    "llamacpp": {"label": "llama.cpp server (local)", "api_base": "http://localhost:8080/v1",
                 "type": "openai-compatible", "requires_key": False},
    "ollama-openai": {"label": "Ollama (OpenAI-compatible /v1)",
                      "api_base": "http://localhost:11434/v1",
                      "type": "openai-compatible", "requires_key": False},
}

PROVIDER_TYPES: list[tuple[str, str]] = [(t, cls.label) for t, cls in ADAPTERS.items()]


class UnknownProviderType(KeyError, ValueError):
    """Raised by get_adapter; catchable as KeyError or ValueError."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown provider type"


def adapter_class(provider_type: str) -> type[Adapter]:
    cls = ADAPTERS.get(provider_type)
    if cls is None and provider_type in PRESETS:
        cls = ADAPTERS[PRESETS[provider_type]["type"]]
    if cls is None:
        known = ", ".join(sorted(ADAPTERS))
        raise UnknownProviderType(f"Unknown provider type {provider_type!r} (known: {known}).")
    return cls


def get_adapter(cfg: ProviderConfig) -> Adapter:
    """The adapter for ``cfg.type``. A preset name (e.g. "groq") is accepted as a type too: it
    maps to its adapter, with the preset's api_base when ``cfg.api_base`` is empty."""
    cls = adapter_class(cfg.type)
    if cfg.type not in ADAPTERS and not cfg.api_base:
        cfg = dataclasses.replace(cfg, api_base=PRESETS[cfg.type]["api_base"])
    return cls(cfg)
