"""Manufacturers: the tenants that issue letters, and the WMIs they hold."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from issuer.db import Base
from issuer.domain.vin import Wmi
from issuer.models.types import UtcDateTime, utcnow

# A letter backs one export-license application, which follows within weeks; a letter still
# unused after 180 days is stale. The manufacturer can change this per tenant.
DEFAULT_LETTER_VALIDITY_DAYS = 180


class ManufacturerType(StrEnum):
    """What kind of enterprise a tenant is. Only MIIT-listed vehicle manufacturers may issue."""

    VEHICLE_MANUFACTURER = "vehicle_manufacturer"
    MODIFIED_VEHICLE_MANUFACTURER = "modified_vehicle_manufacturer"
    SALES_COMPANY = "sales_company"
    OVERSEAS_SALES_DEPARTMENT = "overseas_sales_department"
    OVERSEAS_DEALER = "overseas_dealer"

    @property
    def may_issue(self) -> bool:
        return self is ManufacturerType.VEHICLE_MANUFACTURER


class Manufacturer(Base):
    __tablename__ = "manufacturers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    type: Mapped[str] = mapped_column(String(40), default=ManufacturerType.VEHICLE_MANUFACTURER.value)
    name: Mapped[str] = mapped_column(String(200))  # the MIIT-listed Chinese name, printed on letters
    name_en: Mapped[str] = mapped_column(String(200))
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    # (assumption) How long a letter stays valid after its date of issue; NULL = no end date.
    letter_validity_days: Mapped[int | None] = mapped_column(
        Integer, default=DEFAULT_LETTER_VALIDITY_DAYS, server_default=str(DEFAULT_LETTER_VALIDITY_DAYS)
    )
    # The official seal's image (PNG), printed on letters beside the digital seal when uploaded.
    seal_image: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, deferred=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    wmis: Mapped[list[ManufacturerWmi]] = relationship(
        back_populates="manufacturer", cascade="all, delete-orphan", order_by="ManufacturerWmi.id"
    )

    @property
    def manufacturer_type(self) -> ManufacturerType:
        return ManufacturerType(self.type)

    @property
    def may_issue(self) -> bool:
        return self.manufacturer_type.may_issue

    def wmi_values(self) -> tuple[Wmi, ...]:
        return tuple(Wmi(w.wmi, w.plant_code) for w in self.wmis)


class ManufacturerWmi(Base):
    """A World Manufacturer Identifier a manufacturer holds. ``plant_code`` is positions 12-14
    for small makers (WMI third character ``9``), else empty — empty rather than NULL so the
    unique constraint holds on every backend."""

    __tablename__ = "manufacturer_wmis"
    __table_args__ = (UniqueConstraint("wmi", "plant_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id", ondelete="CASCADE"), index=True)
    wmi: Mapped[str] = mapped_column(String(3))
    plant_code: Mapped[str] = mapped_column(String(3), default="")

    manufacturer: Mapped[Manufacturer] = relationship(back_populates="wmis")
