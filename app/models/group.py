from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import utcnow


class ModelGroup(db.Model):
    """Routing for one public model name that several deployments (Model rows) share."""

    __tablename__ = "model_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    strategy: Mapped[str] = mapped_column(String(20), default="priority")
    fallbacks: Mapped[list[str]] = mapped_column(JSON, default=list)  # other public names, in order
    retries: Mapped[int] = mapped_column(default=2)
    timeout_s: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
