from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class GatewayState(db.Model):
    """A single row shared by every worker and host.

    ``config_version`` is bumped on every configuration change so in-memory caches (keys,
    models, providers) in all workers know to reload; ``health_lease_until`` lets exactly one
    worker run the scheduled health checks per interval.
    """

    __tablename__ = "gateway_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    config_version: Mapped[int] = mapped_column(default=0)
    health_lease_until: Mapped[datetime | None]
    health_lease_owner: Mapped[str | None] = mapped_column(db.String(120))
    # gateway-wide settings edited in the console (sensitivity policy, cache defaults, ...)
    settings: Mapped[dict | None] = mapped_column(db.JSON)
