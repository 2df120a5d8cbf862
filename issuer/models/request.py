"""Letter requests: what an exporter asked a manufacturer for, vehicle by vehicle, with the
verdicts the rules gave at filing time."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from issuer.db import Base
from issuer.models.exporter import Exporter
from issuer.models.manufacturer import Manufacturer
from issuer.models.types import UtcDateTime, utcnow


class RequestStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"  # decided; a letter was issued for the approved vehicles
    REJECTED = "rejected"  # decided; no vehicle approved


class LetterRequest(Base):
    __tablename__ = "letter_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id"), index=True)
    exporter_id: Mapped[int] = mapped_column(ForeignKey("exporters.id"), index=True)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    application_date: Mapped[dt.date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), default=RequestStatus.SUBMITTED.value)
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    assessed_on: Mapped[dt.date] = mapped_column(Date)  # China date the verdicts were computed
    supersedes_number: Mapped[str | None] = mapped_column(String(48), default=None)  # a correction of this letter
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    decided_by: Mapped[str | None] = mapped_column(String(254), default=None)
    decision_note: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    manufacturer: Mapped[Manufacturer] = relationship()
    exporter: Mapped[Exporter] = relationship()
    vehicles: Mapped[list[RequestVehicle]] = relationship(
        back_populates="request", order_by="RequestVehicle.position", cascade="all, delete-orphan"
    )


class RequestVehicle(Base):
    __tablename__ = "request_vehicles"
    __table_args__ = (UniqueConstraint("request_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("letter_requests.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    vin: Mapped[str] = mapped_column(String(64))  # as normalised; may be malformed (then refused)
    brand: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100))
    registration_date: Mapped[dt.date] = mapped_column(Date)
    export_transfer_date: Mapped[dt.date | None] = mapped_column(Date, default=None)
    destination: Mapped[str] = mapped_column(String(8))
    verdict: Mapped[str] = mapped_column(String(20))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    letter_not_needed_from: Mapped[dt.date | None] = mapped_column(Date, default=None)
    decision: Mapped[str | None] = mapped_column(String(20), default=None)
    decision_reason: Mapped[str | None] = mapped_column(Text, default=None)

    request: Mapped[LetterRequest] = relationship(back_populates="vehicles")
