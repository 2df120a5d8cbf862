"""Users, their roles, and API tokens (stored as SHA-256 digests, never in clear)."""

from __future__ import annotations

import datetime as dt
import hashlib
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from issuer.db import Base
from issuer.models.exporter import Exporter
from issuer.models.manufacturer import Manufacturer
from issuer.models.types import UtcDateTime, utcnow


class Role(StrEnum):
    MANUFACTURER_ADMIN = "manufacturer_admin"
    AFTERSALES = "aftersales"
    EXPORTER = "exporter"
    REVIEWER = "reviewer"
    PLATFORM_ADMIN = "platform_admin"

    @property
    def is_manufacturer_staff(self) -> bool:
        return self in (Role.MANUFACTURER_ADMIN, Role.AFTERSALES)


class User(UserMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        # A user belongs to at most one organisation, and to the kind its role needs.
        CheckConstraint("manufacturer_id IS NULL OR exporter_id IS NULL", name="one_organisation"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(30))
    manufacturer_id: Mapped[int | None] = mapped_column(
        ForeignKey("manufacturers.id", ondelete="CASCADE"), default=None, index=True
    )
    exporter_id: Mapped[int | None] = mapped_column(
        ForeignKey("exporters.id", ondelete="CASCADE"), default=None, index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The language the user chose ("zh" or "en"); until they choose, the browser's preference.
    locale: Mapped[str | None] = mapped_column(String(10), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    manufacturer: Mapped[Manufacturer | None] = relationship()
    exporter: Mapped[Exporter | None] = relationship()

    @property
    def user_role(self) -> Role:
        return Role(self.role)

    @property
    def is_active(self) -> bool:  # Flask-Login: a deactivated user cannot sign in
        return self.active

    def get_id(self) -> str:
        """The session's user id, bound to the password: changing or resetting the password
        ends every session signed in with the old one (see ``issuer.web.pages.load_user``)."""
        return f"{self.id}.{self.session_stamp}"

    @property
    def session_stamp(self) -> str:
        return hashlib.sha256(self.password_hash.encode("utf-8")).hexdigest()[:16]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown to the user to tell tokens apart
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=None)

    user: Mapped[User] = relationship()
