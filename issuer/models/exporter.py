"""Exporters (used-vehicle export enterprises) and each manufacturer's negative list."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from issuer.db import Base
from issuer.models.types import UtcDateTime, utcnow


class Exporter(Base):
    __tablename__ = "exporters"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ExporterBlock(Base):
    """One entry of a manufacturer's negative list. Lifting a block keeps the row (``lifted_at``)
    so the list's history stays readable; an entry is in force while ``lifted_at`` is NULL."""

    __tablename__ = "exporter_blocks"

    id: Mapped[int] = mapped_column(primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id", ondelete="CASCADE"), index=True)
    exporter_id: Mapped[int] = mapped_column(ForeignKey("exporters.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    blocked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    blocked_by: Mapped[str] = mapped_column(String(254), default="")
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    lifted_by: Mapped[str | None] = mapped_column(String(254), default=None)
    lift_reason: Mapped[str | None] = mapped_column(Text, default=None)

    exporter: Mapped[Exporter] = relationship()
