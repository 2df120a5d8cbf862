"""What the history box of an object's page (``templates/ui/_history.html``) needs.

Exporters open request and letter pages too, and the audit trail names staff e-mails, client IP
addresses and internal details. So only the manufacturer's staff and platform administrators see
entries in full; anyone else sees when, what, and which kind of organisation acted.
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from sqlalchemy.orm import Session

from issuer.models import Role, User
from issuer.services import audit

# Those who may open the audit page (issuer/web/ui/audit.py), where the whole history is.
AUDIT_READERS = (Role.MANUFACTURER_ADMIN, Role.PLATFORM_ADMIN)


def sees_full_history(user: User) -> bool:
    return user.user_role.is_manufacturer_staff or user.user_role is Role.PLATFORM_ADMIN


def history_context(
    session: Session, user: User, *, object_type: str, object_id: str | int, limit: int = audit.HISTORY_LIMIT
) -> dict[str, Any]:
    """The template variables of the history box: ``history`` (the newest ``limit`` entries,
    oldest first), ``history_full``, ``history_kinds`` (actor → organisation kind, for the
    others), ``history_total`` and ``history_more_url`` (the audit page, for those who may
    open it, when there are more entries than shown)."""
    history = audit.history_of(session, object_type=object_type, object_id=object_id, limit=limit)
    total = len(history)
    if total >= limit:
        total = audit.count_history(session, object_type=object_type, object_id=object_id)
    full = sees_full_history(user)
    more_url = None
    if total > len(history) and user.user_role in AUDIT_READERS:
        more_url = url_for("audit_ui.index", object_type=object_type, object_id=str(object_id))
    return {
        "history": history,
        "history_full": full,
        "history_kinds": {} if full else audit.actor_kinds(session, {entry.actor for entry in history}),
        "history_total": total,
        "history_more_url": more_url,
    }
