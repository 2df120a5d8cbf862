"""The audit trail: an append-only, hash-chained log of every state change and key use.

Each entry carries ``prev_hash``, the hash of the entry before it, and ``entry_hash``, the
SHA-256 of its own canonical content including ``prev_hash``. ``AuditHead`` is a single row
holding the last sequence number and hash: appending locks it (``UPDATE … RETURNING``), so
concurrent writers queue instead of forking the chain, and deleting the newest entries is
detected because the head no longer matches the last entry. The database refuses UPDATE and
DELETE on ``audit_entries`` (triggers, created by the migration).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from issuer.db import Base
from issuer.models.types import UtcDateTime

GENESIS_HASH = "0" * 64


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_object", "object_type", "object_id"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(254))  # e-mail of the user, or "cli:<user>@<host>"
    origin: Mapped[str] = mapped_column(String(100))  # client IP address, or "cli"
    action: Mapped[str] = mapped_column(String(60), index=True)  # e.g. "letter.revoked"
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(80))
    # Plain ids, not foreign keys: the log must never be changed by what happens to the rows it
    # describes (a cascade would be an UPDATE, which the table refuses).
    manufacturer_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    exporter_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """One row (id 1): the sequence number and hash of the newest entry."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)
