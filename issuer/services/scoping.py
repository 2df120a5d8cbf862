"""Tenant scoping in one place: which rows of a tenant-owned table a user may see."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, false

from issuer.models import Role, User

T = TypeVar("T", bound=Any)


def scoped(query: Select[T], user: User, *, manufacturer_column: Any, exporter_column: Any) -> Select[T]:
    """Limit ``query`` to what ``user`` may see: an exporter its own rows, manufacturer staff the
    rows of their manufacturer, a platform administrator everything, anyone else nothing."""
    role = user.user_role
    if role is Role.EXPORTER:
        return query.where(exporter_column == user.exporter_id)
    if role.is_manufacturer_staff:
        return query.where(manufacturer_column == user.manufacturer_id)
    if role is Role.PLATFORM_ADMIN:
        return query
    return query.where(false())
