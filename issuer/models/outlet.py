"""Overseas after-sales service outlets, with their full edit history.

``Outlet`` holds the current state; every change (including the creation) appends an immutable
``OutletVersion``. A letter will reference the version it printed, so editing an outlet later
never changes what an issued letter says.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from issuer.db import Base
from issuer.domain.outlets import OutletCoverage, parse_brands
from issuer.models.types import UtcDateTime, utcnow

# The fields an outlet's version records; the import, the API and the history share this list.
OUTLET_FIELDS = (
    "country",
    "name",
    "provider",
    "address",
    "city",
    "phone",
    "email",
    "brands",
    "valid_from",
    "valid_to",
    "active",
)


class _OutletColumns:
    country: Mapped[str] = mapped_column(String(2))
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text)
    city: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    brands: Mapped[str] = mapped_column(Text, default="")  # ';'-separated; empty = every brand
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date, default=None)  # inclusive
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    def coverage(self, code: str) -> OutletCoverage:
        return OutletCoverage(
            code=code,
            country=self.country,
            brands=parse_brands(self.brands),
            valid_from=self.valid_from,
            valid_to=self.valid_to,
            active=self.active,
        )


class Outlet(_OutletColumns, Base):
    __tablename__ = "outlets"
    __table_args__ = (UniqueConstraint("manufacturer_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    versions: Mapped[list[OutletVersion]] = relationship(
        back_populates="outlet", order_by="OutletVersion.version", cascade="all, delete-orphan"
    )


class OutletVersion(_OutletColumns, Base):
    """An outlet as it was between two edits. Never updated, never deleted while a letter uses it."""

    __tablename__ = "outlet_versions"
    __table_args__ = (UniqueConstraint("outlet_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    outlet_id: Mapped[int] = mapped_column(ForeignKey("outlets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(254), default="")
    change: Mapped[str] = mapped_column(String(20), default="created")  # created | updated | import

    outlet: Mapped[Outlet] = relationship(back_populates="versions")
