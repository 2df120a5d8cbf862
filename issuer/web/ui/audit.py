"""Pages under /audit: the audit trail, read by administrators.

A platform administrator reads every entry and can have the hash chain verified; a
manufacturer administrator reads the entries of their own manufacturer only. The scoping is
``issuer.services.audit.list_entries``'s, so this page cannot show another tenant's entries.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import Length, Optional

from issuer.models import Role
from issuer.services import audit
from issuer.web.auth import current_user, requires
from issuer.web.session import db_session
from issuer.web.ui import AUDIT_ACTIONS

audit_ui = Blueprint("audit_ui", __name__, url_prefix="/audit")

PER_PAGE = 50
MAX_PAGE = 100_000

OBJECT_TYPES = {
    "request": _l("Request"),
    "letter": _l("Letter"),
    "outlet": _l("Outlet"),
    "manufacturer": _l("Manufacturer"),
    "exporter": _l("Exporter"),
    "user": _l("User"),
    "token": _l("API token"),
    "key": _l("Seal key"),
}


class AuditFilterForm(FlaskForm):
    """The filters, sent as a GET query (it changes nothing, so it needs no CSRF token)."""

    class Meta:
        csrf = False

    action = SelectField(_l("Action"), validators=[Optional()])
    object_type = SelectField(_l("Object type"), validators=[Optional()])
    object_id = StringField(
        _l("Object"),
        validators=[Optional(), Length(max=80)],
        description=_l("A request number, letter number, outlet code, …"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action.choices = [("", _l("Any action")), *AUDIT_ACTIONS.items()]
        self.object_type.choices = [("", _l("Any object")), *OBJECT_TYPES.items()]


def _page_number() -> int | None:
    """The ``?page=`` asked for, or None when it is not a page number."""
    raw = request.args.get("page", "").strip()
    if not raw:
        return 1
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= MAX_PAGE else None


@audit_ui.route("", methods=["GET", "POST"])
@requires(Role.MANUFACTURER_ADMIN, Role.PLATFORM_ADMIN)
def index():  # type: ignore[no-untyped-def]
    user = current_user()
    session = db_session()
    form = AuditFilterForm(formdata=request.args)
    page = _page_number()
    valid = form.validate()
    if page is None:
        valid = False
        form.form_errors.append(_l("The page number must be a whole number from 1."))
    filters = {
        "action": form.action.data or None,
        "object_type": form.object_type.data or None,
        "object_id": (form.object_id.data or "").strip() or None,
    }
    if valid:
        result = audit.list_entries(session, user, page=page or 1, per_page=PER_PAGE, **filters)
    else:
        result = audit.EntryPage(entries=[], page=1, per_page=PER_PAGE, total=0)
    verification = None
    # Checking reads the whole chain: a POST (with its CSRF token), so no link can set it off.
    if user.user_role is Role.PLATFORM_ADMIN and request.method == "POST" and request.form.get("verify") == "1":
        verification = audit.verify_chain(session)
    query = {key: value for key, value in filters.items() if value}
    return render_template(
        "ui/audit/index.html",
        form=form,
        result=result,
        query=query,
        verification=verification,
        may_verify=user.user_role is Role.PLATFORM_ADMIN,
        object_types=OBJECT_TYPES,
    ), (200 if valid else 422)
