"""Pages under /admin/outbox: the e-mail the service wrote, for administrators.

Every notification is kept here whatever became of it: sent, queued for a (re)try, failed after
the last retry, or kept because no SMTP server is configured (then this page is where the
mail is read). A platform administrator sees every message, a manufacturer administrator those
about their manufacturer; the scoping is the service's (``issuer.services.notifications``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

from issuer import clock
from issuer.errors import Conflict
from issuer.models import MessageState, OutboxMessage
from issuer.services import notifications
from issuer.services.notifications import OUTBOX_ROLES
from issuer.web.auth import current_user, requires
from issuer.web.session import db_session

outbox = Blueprint("outbox", __name__, url_prefix="/admin/outbox")

PER_PAGE = 50

STATE_LABELS = {
    MessageState.QUEUED.value: _l("Queued"),
    MessageState.SENT.value: _l("Sent"),
    MessageState.FAILED.value: _l("Failed"),
    MessageState.KEPT.value: _l("Kept (no SMTP server)"),
}

KIND_LABELS = {
    "request.submitted": _l("Request arrived"),
    "request.decided": _l("Request decided"),
    "letter.revoked": _l("Letter revoked"),
}


class RetryForm(FlaskForm):
    """No fields: the CSRF token is what the retry button posts."""


def _label(labels: dict[str, Any], value: str) -> str:
    text = labels.get(value)
    return str(text) if text is not None else value


def _china_time(at: Any) -> str:
    return at.astimezone(clock.CHINA_TIME).strftime("%Y-%m-%d %H:%M") if at is not None else ""


def _page_number() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


def _helpers() -> dict[str, Any]:
    return {
        "state_label": lambda state: _label(STATE_LABELS, state),
        "kind_label": lambda kind: _label(KIND_LABELS, kind),
        "china_time": _china_time,
    }


@outbox.get("")
@requires(*OUTBOX_ROLES)
def index():  # type: ignore[no-untyped-def]
    """The messages the administrator may read, newest first, filtered by state."""
    user = current_user()
    session = db_session()
    wanted = request.args.get("state", "all")
    state = wanted if wanted in STATE_LABELS else None
    page = _page_number()
    total = notifications.count_messages(session=session, user=user, state=state)
    pages = max(1, -(-total // PER_PAGE))
    page = min(page, pages)
    messages = notifications.list_messages(
        session=session, user=user, state=state, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    filters = [{"value": "all", "label": _("All")}]
    filters += [{"value": value, "label": str(text)} for value, text in STATE_LABELS.items()]
    return render_template(
        "ui/outbox/index.html",
        messages=messages,
        filters=filters,
        state=state or "all",
        total=total,
        page=page,
        pages=pages,
        **_helpers(),
    )


def _message_page(message: OutboxMessage, form: RetryForm | None = None) -> str:
    return render_template(
        "ui/outbox/message.html",
        message=message,
        form=form or RetryForm(),
        may_retry=message.state == MessageState.FAILED.value,
        **_helpers(),
    )


@outbox.get("/<int:message_id>")
@requires(*OUTBOX_ROLES)
def message(message_id: int):  # type: ignore[no-untyped-def]
    """One message as it was (or will be) sent: headers, state and the plain-text body."""
    found = notifications.get_message(session=db_session(), user=current_user(), message_id=message_id)
    return _message_page(found)


@outbox.post("/<int:message_id>/retry")
@requires(*OUTBOX_ROLES)
def retry(message_id: int):  # type: ignore[no-untyped-def]
    """Queue a failed message again; it is delivered after the commit, in the background."""
    user = current_user()
    session = db_session()
    form = RetryForm()
    if not form.validate_on_submit():  # pragma: no cover - CSRFProtect refuses a bad token first
        return _message_page(notifications.get_message(session=session, user=user, message_id=message_id), form), 422
    try:
        found = notifications.retry_message(session=session, user=user, message_id=message_id)
    except Conflict:
        session.rollback()
        found = notifications.get_message(session=session, user=user, message_id=message_id)
        flash(
            _("Only a failed message can be retried; this one is: %(state)s.", state=_label(STATE_LABELS, found.state)),
            "error",
        )
    else:
        flash(_("The message to %(recipient)s was queued again.", recipient=found.recipient), "success")
    return redirect(url_for("outbox.message", message_id=message_id), code=303)
