"""Responses API objects kept for `previous_response_id`, GET and DELETE (only with store: true)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import utcnow


class StoredResponse(db.Model):
    """One stored response: this turn's input items, the response object (with its output
    items) and the previous response it continued. Visible only to the key that created it;
    redacted when the sensitivity policy redacts; pruned like logged bodies."""

    __tablename__ = "stored_responses"
    __table_args__ = (Index("ix_stored_responses_key_created", "key_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    model: Mapped[str] = mapped_column(String(200))
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    input_items: Mapped[list[Any]] = mapped_column(JSON, default=list)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
