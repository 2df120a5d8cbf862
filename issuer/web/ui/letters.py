"""Pages under /letters: the letters a user may see, one letter with its content, status and
history, its sealed PDF, and revoking it (after-sales and manufacturer administrators).

A letter's page shows the immutable snapshot that was printed (``letter_body``), never the
registry as it is now; revoking asks for a reason and an explicit confirmation, since it cannot
be undone.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, Length

from issuer import clock
from issuer.errors import Conflict, ValidationFailed
from issuer.models import Letter, LetterStatus, Role
from issuer.rendering.qr import verification_qr
from issuer.services import letters as letter_service
from issuer.services.letters import LETTER_FILTERS, MAX_REASON_CHARS
from issuer.web.auth import current_user, requires
from issuer.web.letters import letter_body
from issuer.web.session import db_session
from issuer.web.ui.forms import show_service_error
from issuer.web.ui.history import history_context, sees_full_history
from issuer.web.ui.requests import PER_PAGE, destination_name, label, page_number, pagination

letters_ui = Blueprint("letters_ui", __name__, url_prefix="/letters")

READERS = (Role.EXPORTER, Role.AFTERSALES, Role.MANUFACTURER_ADMIN, Role.PLATFORM_ADMIN)
REVOKERS = (Role.AFTERSALES, Role.MANUFACTURER_ADMIN)

STATUS_LABELS = {
    "valid": _l("Valid"),
    "expired": _l("Expired"),
    "revoked": _l("Revoked"),
    "superseded": _l("Superseded"),
}


def _summary(letter: Letter, summary: letter_service.LetterSummary) -> dict[str, Any]:
    """A row of the list: the letter's columns and its summary (never its whole content)."""
    return {
        "number": letter.number,
        "status": letter_service.public_status(letter, clock.today_in_china()),
        "manufacturer": summary.manufacturer,
        "exporter": summary.exporter,
        "reference": summary.reference,
        "vehicle_count": summary.vehicle_count,
        "destinations": sorted((destination_name(code) for code in summary.destinations), key=str.casefold),
        "issued_on": letter.issued_on,
        "valid_until": letter.valid_until,
    }


@letters_ui.get("")
@requires(*READERS)
def index():  # type: ignore[no-untyped-def]
    """The letters the user may see, newest first, filtered by status."""
    user = current_user()
    session = db_session()
    wanted = request.args.get("status", "all")
    status = wanted if wanted in LETTER_FILTERS else None
    wanted = status or "all"
    page = page_number()
    total = letter_service.count_letters(session=session, user=user, status=status)
    rows = letter_service.list_letters(
        session=session, user=user, status=status, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    summaries = letter_service.letter_summaries(session=session, letter_ids=[letter.id for letter in rows])
    filters = [{"value": value, "label": str(text)} for value, text in STATUS_LABELS.items()]
    filters.append({"value": "all", "label": _("All")})
    return render_template(
        "ui/letters/index.html",
        rows=[_summary(letter, summaries[letter.id]) for letter in rows],
        filters=filters,
        status=wanted,
        status_label=lambda s: label(STATUS_LABELS, s),
        pages=pagination(page, total, PER_PAGE),
    )


def _letter_page(letter: Letter, template: str, *, body: dict[str, Any] | None = None, **context: Any) -> str:
    body = body or letter_body(letter)
    return render_template(
        template,
        letter=body,
        status_label=label(STATUS_LABELS, body["status"]),
        may_revoke=current_user().user_role in REVOKERS and letter.status == LetterStatus.VALID.value,
        viewer_is_staff=sees_full_history(current_user()),  # staff names are for staff
        **context,
    )


@letters_ui.get("/<number>")
@requires(*READERS)
def detail(number: str):  # type: ignore[no-untyped-def]
    session = db_session()
    letter = letter_service.get_letter(session=session, user=current_user(), number=number)
    body = letter_body(letter)
    return _letter_page(
        letter,
        "ui/letters/detail.html",
        body=body,
        qr_svg=verification_qr(body["verify_url"]).svg,
        **history_context(session, current_user(), object_type="letter", object_id=letter.number),
    )


@letters_ui.get("/<number>/pdf")
@requires(*READERS)
def pdf(number: str):  # type: ignore[no-untyped-def]
    """The sealed PDF, byte for byte as issued (any change would break its seal)."""
    letter = letter_service.get_letter(session=db_session(), user=current_user(), number=number, with_pdf=True)
    response = Response(letter.pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{letter.number}.pdf"'
    response.headers["X-Content-SHA256"] = letter.pdf_sha256 or ""
    response.cache_control.private = True
    return response


class RevokeForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason for revoking"),
        validators=[
            DataRequired(_l("Give the reason for revoking; the exporter and anyone verifying the letter see it.")),
            Length(max=MAX_REASON_CHARS),
        ],
    )
    confirm = BooleanField(
        _l("I understand this cannot be undone"),
        validators=[DataRequired(_l("Tick this box to confirm that revoking cannot be undone."))],
    )


@letters_ui.route("/<number>/revoke", methods=["GET", "POST"])
@requires(*REVOKERS)
def revoke(number: str):  # type: ignore[no-untyped-def]
    """Ask for a reason and a confirmation, then revoke: the letter is invalid at once."""
    user = current_user()
    session = db_session()
    letter = letter_service.get_letter(session=session, user=user, number=number)
    form = RevokeForm()
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            try:
                letter = letter_service.revoke_letter(
                    session=session, user=user, number=letter.number, reason=form.reason.data or ""
                )
            except (ValidationFailed, Conflict) as error:
                session.rollback()
                show_service_error(form, error)
                status = error.http_status
                letter = letter_service.get_letter(session=session, user=user, number=number)
            else:
                flash(_("Letter %(number)s is revoked.", number=letter.number), "success")
                return redirect(url_for("letters_ui.detail", number=letter.number))
    return _letter_page(letter, "ui/letters/revoke.html", form=form), status
