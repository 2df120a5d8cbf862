"""The production registry: the VINs a manufacturer made, with brand and model."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from issuer.db import Base


class RegisteredVehicle(Base):
    __tablename__ = "registered_vehicles"
    # The unique constraint's index (manufacturer_id, vin) also serves every registry look-up.
    __table_args__ = (UniqueConstraint("manufacturer_id", "vin"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id", ondelete="CASCADE"))
    vin: Mapped[str] = mapped_column(String(17))
    brand: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100))
    production_date: Mapped[dt.date | None] = mapped_column(Date, default=None)
