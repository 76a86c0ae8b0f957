"""Live per-deployment routing state (breaker, latency, in flight) for the console and API."""
from __future__ import annotations


def live_states() -> dict[int, dict]:
    """{model id: {"breaker": ..., "latency_ms": ..., "in_flight": ...}} (filled by the router)."""
    from app.services.router import router
    return router().live_view()
