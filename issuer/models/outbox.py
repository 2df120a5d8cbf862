"""Outgoing e-mail. Every message is written to the outbox in the same transaction as the change
it reports, then delivered by SMTP after the commit (or kept, when no SMTP server is configured,
for administrators to read). Delivery never blocks or undoes the change."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from issuer.db import Base
from issuer.models.types import UtcDateTime, utcnow


class MessageState(StrEnum):
    QUEUED = "queued"  # waiting for delivery (or for a retry)
    SENT = "sent"
    FAILED = "failed"  # gave up after the last retry
    KEPT = "kept"  # no SMTP server configured: kept in the outbox only


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(60))  # e.g. "request.submitted"
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    manufacturer_id: Mapped[int | None] = mapped_column(
        ForeignKey("manufacturers.id", ondelete="SET NULL"), default=None, index=True
    )
    exporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("exporters.id", ondelete="SET NULL"), default=None, index=True
    )
    state: Mapped[str] = mapped_column(String(20), default=MessageState.QUEUED.value, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
