"""Idempotency keys of ``POST /api/v1/requests``: the answer a request was filed with, kept for
24 hours under the key its user sent, so a retry with the same key is answered the same and files
nothing twice (see ``issuer.services.idempotency`` for the rules)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from issuer.db import Base
from issuer.models.types import UtcDateTime


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    # A key is its user's: two users (even of one exporter) never share or see each other's keys.
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))  # as sent, case-sensitive
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 (hex) of the body's canonical JSON
    request_id: Mapped[int] = mapped_column(ForeignKey("letter_requests.id", ondelete="CASCADE"))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSON)  # the answer exactly as first given
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)  # expiry counts from here
