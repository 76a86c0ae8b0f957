"""Synthetic usage for dashboard load tests (`flask seed-usage --rows 10000000`)."""
from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from typing import Callable

from app.extensions import db
from app.models import UsageRecord, utcnow
from app.services import rollups

MODELS = [("gpt-4o-mini", 1, Decimal("0.15"), Decimal("0.60")), ("gpt-4o", 1, Decimal("2.5"), Decimal("10")),
          ("claude-sonnet-4", 2, Decimal("3"), Decimal("15")), ("llama3.2", 3, Decimal(0), Decimal(0)),
          ("text-embedding-3-small", 1, Decimal("0.02"), Decimal(0))]
OWNERS = ["research", "support", "growth", ""]


def seed_usage(rows: int, days: int, batch: int = 20_000, seed: int = 1,
               progress: Callable[[int], None] | None = None) -> int:
    rng = random.Random(seed)
    end = utcnow()
    span = days * 86400
    made = 0
    while made < rows:
        n = min(batch, rows - made)
        chunk = []
        for _ in range(n):
            name, provider, pin, pout = rng.choice(MODELS)
            at = end - timedelta(seconds=rng.random() * span)
            pt, ct = rng.randint(20, 4000), (0 if "embedding" in name else rng.randint(5, 800))
            status = 200 if rng.random() > 0.03 else rng.choice((429, 502, 504, 400))
            latency = rng.lognormvariate(6.3, 0.7)
            chunk.append({
                "created_at": at, "request_id": None, "endpoint": "embeddings" if "embedding" in name else "chat",
                "key_id": rng.randint(1, 20), "model_name": name, "model_id": None, "provider_id": provider,
                "prompt_tokens": pt, "completion_tokens": ct, "cached_tokens": 0, "tokens_estimated": False,
                "cost_usd": ((pt * pin + ct * pout) / Decimal(1_000_000)).quantize(Decimal("0.00000001")),
                "latency_ms": round(latency, 1), "ttfb_ms": round(latency * 0.3, 1), "status_code": status,
                "error_class": None if status == 200 else "upstream_error", "cache_hit": rng.random() < 0.05,
                "stream": rng.random() < 0.4, "attempts": None, "owner": rng.choice(OWNERS) or None,
                "detectors": None, "details": None})
        db.session.execute(db.insert(UsageRecord), chunk)
        rollups.apply(chunk)
        db.session.commit()
        made += n
        if progress:
            progress(made)
    return made
