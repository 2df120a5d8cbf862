"""Seal keys: the manufacturer's signing keys and their certificates.

The private key itself lives encrypted in the keys folder; this table holds the public half
(the certificate chain) for ever, so every letter ever sealed can still be verified after the
key was rotated.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from issuer.db import Base
from issuer.models.manufacturer import Manufacturer
from issuer.models.types import UtcDateTime, utcnow


class SealKey(Base):
    __tablename__ = "seal_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(80), unique=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("manufacturers.id", ondelete="RESTRICT"), index=True)
    algorithm: Mapped[str] = mapped_column(String(40))
    certificate_pem: Mapped[str] = mapped_column(Text)  # the signer's certificate
    chain_pem: Mapped[str] = mapped_column(Text, default="")  # issuing CA certificates, if any
    source: Mapped[str] = mapped_column(String(20))  # generated | imported
    key_file: Mapped[str] = mapped_column(String(200))  # file name inside the keys folder
    not_before: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    not_after: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)

    manufacturer: Mapped[Manufacturer] = relationship()
