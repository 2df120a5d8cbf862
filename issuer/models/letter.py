"""Issued letters: immutable snapshots of what was printed, the sealed PDF, and their status.

A letter is created ``pending`` with its number and content reserved, then completed with its
sealed PDF (``valid``) — two steps, so a crash between them leaves a pending letter the next
attempt completes, never a letter without its PDF. Only ``valid``, ``revoked`` and
``superseded`` letters are ever shown to anyone.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from issuer.db import Base
from issuer.models.exporter import Exporter
from issuer.models.manufacturer import Manufacturer
from issuer.models.types import UtcDateTime, utcnow


class LetterStatus(StrEnum):
    PENDING = "pending"
    VALID = "valid"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"


class Letter(Base):
    __tablename__ = "letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(48), unique=True)
    verification_code: Mapped[str] = mapped_column(String(24))
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id"), index=True)
    exporter_id: Mapped[int] = mapped_column(ForeignKey("exporters.id"), index=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("letter_requests.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=LetterStatus.PENDING.value)
    issued_on: Mapped[dt.date] = mapped_column(Date)  # China date printed on the letter
    valid_until: Mapped[dt.date | None] = mapped_column(Date, default=None)  # inclusive
    content: Mapped[dict[str, Any]] = mapped_column(JSON)  # the LetterContent snapshot printed
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(254), default="")
    issued_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)  # sealed
    pdf: Mapped[bytes | None] = deferred(mapped_column(LargeBinary, default=None))
    pdf_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    page_count: Mapped[int | None] = mapped_column(Integer, default=None)
    seal_key_id: Mapped[int | None] = mapped_column(ForeignKey("seal_keys.id"), default=None)
    sealer: Mapped[str | None] = mapped_column(String(40), default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    revoked_by: Mapped[str | None] = mapped_column(String(254), default=None)
    revocation_reason: Mapped[str | None] = mapped_column(Text, default=None)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("letters.id"), default=None)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("letters.id"), default=None)

    manufacturer: Mapped[Manufacturer] = relationship()
    exporter: Mapped[Exporter] = relationship()
    vehicles: Mapped[list[LetterVehicle]] = relationship(
        back_populates="letter", order_by="LetterVehicle.position", cascade="all, delete-orphan"
    )
    outlets: Mapped[list[LetterOutlet]] = relationship(back_populates="letter", cascade="all, delete-orphan")
    supersedes: Mapped[Letter | None] = relationship(foreign_keys=[supersedes_id], remote_side=[id])
    superseded_by: Mapped[Letter | None] = relationship(foreign_keys=[superseded_by_id], remote_side=[id])


class LetterVehicle(Base):
    __tablename__ = "letter_vehicles"
    __table_args__ = (UniqueConstraint("letter_id", "vin"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    letter_id: Mapped[int] = mapped_column(ForeignKey("letters.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    vin: Mapped[str] = mapped_column(String(17), index=True)
    brand: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100))
    registration_date: Mapped[dt.date] = mapped_column(Date)
    destination: Mapped[str] = mapped_column(String(2))

    letter: Mapped[Letter] = relationship(back_populates="vehicles")


class LetterOutlet(Base):
    """Which outlet version a letter printed, for which destination."""

    __tablename__ = "letter_outlets"
    __table_args__ = (UniqueConstraint("letter_id", "outlet_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    letter_id: Mapped[int] = mapped_column(ForeignKey("letters.id", ondelete="CASCADE"), index=True)
    outlet_version_id: Mapped[int] = mapped_column(ForeignKey("outlet_versions.id", ondelete="RESTRICT"), index=True)
    destination: Mapped[str] = mapped_column(String(2))

    letter: Mapped[Letter] = relationship(back_populates="outlets")


class CoveredVin(Base):
    """A VIN held by a letter that is (or may still be) valid. The primary key makes it
    impossible for two valid letters to cover one VIN, even under concurrent issuance; rows go
    when the letter is revoked or superseded, and an expired letter's rows are cleared lazily."""

    __tablename__ = "covered_vins"

    vin: Mapped[str] = mapped_column(String(17), primary_key=True)
    letter_id: Mapped[int] = mapped_column(ForeignKey("letters.id", ondelete="CASCADE"), index=True)
    valid_until: Mapped[dt.date | None] = mapped_column(Date, default=None)


class LetterSequence(Base):
    """The last serial used per manufacturer and year; numbers are never reused."""

    __tablename__ = "letter_sequences"

    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id", ondelete="CASCADE"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_serial: Mapped[int] = mapped_column(Integer, default=0)
