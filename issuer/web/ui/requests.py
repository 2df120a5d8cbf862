"""Pages under /requests: the exporter follows its requests; after-sales staff work through the
review queue of their manufacturer and decide a request vehicle by vehicle.

A request's page shows the verdicts given when it was filed. For staff reviewing a submitted
request it also shows the verdicts recomputed today — exactly as the decision will compute them —
and the outlets a letter issued today would print, so what they approve is what gets printed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from issuer import clock
from issuer.domain.countries import lookup_country
from issuer.domain.eligibility import REASON_TEXT, ReasonCode, VehicleAssessment
from issuer.errors import Conflict, IssuerError, ValidationFailed
from issuer.models import LetterRequest, RequestStatus, Role, User
from issuer.services import issuance_jobs
from issuer.services import letters as letter_service
from issuer.services import requests as request_service
from issuer.services.letters import MAX_REASON_CHARS
from issuer.web import issuing
from issuer.web.auth import current_user, requires
from issuer.web.session import db_session
from issuer.web.ui.history import history_context

requests_ui = Blueprint("requests_ui", __name__, url_prefix="/requests")

PER_PAGE = 50
MAX_PAGE = 10**6
MAX_NOTE_CHARS = 2000
READERS = (Role.EXPORTER, Role.AFTERSALES, Role.MANUFACTURER_ADMIN, Role.PLATFORM_ADMIN)
STAFF = (Role.AFTERSALES, Role.MANUFACTURER_ADMIN, Role.PLATFORM_ADMIN)

JOB_STATE_LABELS = {
    "queued": _l("Waiting for a worker"),
    "running": _l("Being sealed"),
    "done": _l("Issued"),
    "failed": _l("Failed"),
}

STATUS_LABELS = {
    RequestStatus.SUBMITTED.value: _l("Submitted"),
    RequestStatus.APPROVED.value: _l("Approved"),
    RequestStatus.REJECTED.value: _l("Rejected"),
}
VERDICT_LABELS = {
    "eligible": _l("Eligible"),
    "not_required": _l("No letter needed"),
    "refused": _l("Refused"),
}
DECISION_LABELS = {
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "not_approved": _l("Not approved"),
}
ACTIONS = ("all_eligible", "selected", "reject")


# -- shared by the letter pages ----------------------------------------------------------------


def page_number() -> int:
    """The ``page`` query parameter; anything that is not a page number is the first page."""
    raw = request.args.get("page", "")
    return min(int(raw), MAX_PAGE) if raw.isdigit() and int(raw) >= 1 else 1


def pagination(page: int, total: int, per_page: int) -> dict[str, Any]:
    pages = max(1, -(-total // per_page))
    return {"page": page, "pages": pages, "total": total, "previous": page > 1, "next": page < pages}


def in_page_language(zh: str, en: str) -> str:
    return zh if str(get_locale()) == "zh" else en


def destination_name(code: str) -> str:
    country = lookup_country(code) if code else None
    return in_page_language(country.name_zh, country.name_en) if country else code


def reason_texts(reasons: Iterable[str | ReasonCode]) -> list[str]:
    """The reason codes in plain words, in the page's language."""
    texts = []
    for reason in reasons:
        try:
            texts.append(in_page_language(*REASON_TEXT[ReasonCode(reason)]))
        except ValueError:
            texts.append(str(reason))
    return texts


def label(labels: Mapping[str, Any], value: str | None) -> str:
    return str(labels[value]) if value in labels else (value or "")


# -- the list ----------------------------------------------------------------------------------


@requests_ui.get("")
@requires(*READERS)
def index():  # type: ignore[no-untyped-def]
    """An exporter's own requests; for staff the review queue, waiting requests first."""
    user = current_user()
    session = db_session()
    is_staff = user.user_role in STAFF
    wanted = request.args.get("status", "")
    if wanted not in (*STATUS_LABELS, "all"):
        wanted = RequestStatus.SUBMITTED.value if is_staff else "all"
    status = None if wanted == "all" else wanted
    counts = request_service.status_counts(session=session, user=user)
    total = counts.get(status, 0) if status else sum(counts.values())
    page = page_number()
    rows = request_service.list_requests(
        session=session,
        user=user,
        status=status,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
        queue_order=is_staff,
    )
    ids = [r.id for r in rows]
    vehicle_counts = request_service.vehicle_counts(session=session, request_ids=ids)
    letters = letter_service.letter_numbers_of_requests(session=session, request_ids=ids)
    filters = [
        {"value": value, "label": str(text), "count": counts.get(value, 0)} for value, text in STATUS_LABELS.items()
    ]
    filters.append({"value": "all", "label": _("All"), "count": sum(counts.values())})
    return render_template(
        "ui/requests/index.html",
        rows=rows,
        vehicle_counts=vehicle_counts,
        letters=letters,
        filters=filters,
        status=wanted,
        is_staff=is_staff,
        status_label=lambda s: label(STATUS_LABELS, s),
        pages=pagination(page, total, PER_PAGE),
    )


# -- one request -------------------------------------------------------------------------------


class DecisionForm(FlaskForm):
    """The after-sales decision on a submitted request. Which vehicles are approved and which
    rejected are the ticked boxes of the vehicles table; the button pressed names the action."""

    approve = SelectMultipleField(_l("Approve"), choices=[], validate_choice=False)
    reject = SelectMultipleField(_l("Reject"), choices=[], validate_choice=False)
    reason = TextAreaField(
        _l("Reason for rejecting"),
        validators=[Optional(), Length(max=MAX_REASON_CHARS)],
        description=_l("Told to the exporter for every vehicle ticked under Reject."),
    )
    note = TextAreaField(_l("Note to the exporter (optional)"), validators=[Optional(), Length(max=MAX_NOTE_CHARS)])
    valid_until = DateField(
        _l("Valid until (optional)"),
        validators=[Optional()],
        description=_l("Leave empty for the manufacturer's usual validity."),
    )
    action = StringField()


class CompletionForm(FlaskForm):
    """Finish issuing a letter whose issuance did not finish (only the CSRF token)."""


def _is_staff_reviewer(user: User, letter_request: LetterRequest) -> bool:
    return user.user_role in STAFF and letter_request.status == RequestStatus.SUBMITTED.value


def _vehicle_rows(
    letter_request: LetterRequest,
    verdicts_today: Mapping[str, VehicleAssessment] | None,
    row_errors: Mapping[str, list[str]],
) -> list[dict[str, Any]]:
    rows = []
    for vehicle in letter_request.vehicles:
        today = verdicts_today.get(vehicle.vin) if verdicts_today is not None else None
        today_reasons = [r.value for r in today.reasons] if today else []
        changed = today is not None and (
            today.verdict.value != vehicle.verdict or sorted(today_reasons) != sorted(vehicle.reasons)
        )
        rows.append(
            {
                "position": vehicle.position + 1,
                "vin": vehicle.vin,
                "brand": vehicle.brand,
                "model": vehicle.model,
                "registration_date": vehicle.registration_date,
                "export_transfer_date": vehicle.export_transfer_date,
                "destination": vehicle.destination,
                "destination_name": destination_name(vehicle.destination),
                "verdict": vehicle.verdict,
                "verdict_label": label(VERDICT_LABELS, vehicle.verdict),
                "reasons": reason_texts(vehicle.reasons),
                "letter_not_needed_from": vehicle.letter_not_needed_from,
                "decision": vehicle.decision,
                "decision_label": label(DECISION_LABELS, vehicle.decision),
                "decision_reason": vehicle.decision_reason,
                "today": today.verdict.value if today else None,
                "today_label": label(VERDICT_LABELS, today.verdict.value) if today else "",
                "today_reasons": reason_texts(today_reasons),
                "changed": changed,
                # A vehicle refused today cannot be approved (the decision would refuse it).
                "approvable": today is not None and today.verdict.value != "refused",
                "errors": row_errors.get(vehicle.vin, []),
            }
        )
    return rows


def _render_request(
    letter_request: LetterRequest,
    *,
    form: DecisionForm | None = None,
    row_errors: Mapping[str, list[str]] | None = None,
    error: IssuerError | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The request's page; ``error`` is a decision's failure, shown at the top when the page no
    longer has a decision form (e.g. someone else decided the request meanwhile)."""
    user = current_user()
    session = db_session()
    review = None
    if _is_staff_reviewer(user, letter_request):
        review = letter_service.review_request(session=session, user=user, request_id=letter_request.id)
    may_decide = review is not None and user.user_role is Role.AFTERSALES
    if may_decide and form is None:
        form = DecisionForm(formdata=None)
    rows = _vehicle_rows(letter_request, review.verdicts if review else None, row_errors or {})
    letter_number = letter_service.letter_numbers_of_requests(session=session, request_ids=[letter_request.id]).get(
        letter_request.id
    )
    # A letter reserved but never sealed (the worker died, the last commit failed) is finished
    # from here; until then the exporter is told it is being issued.
    pending_letter = None
    issuance_job = None
    if letter_number is None and letter_request.status == RequestStatus.APPROVED.value:
        pending_letter = letter_service.pending_letter_of(session=session, request_id=letter_request.id)
        if pending_letter is not None:
            issuance_job = issuance_jobs.latest_job_of_request(session, letter_request.id)
    # A job still queued or running is progress, not a failure: the page says so and refreshes.
    in_progress = issuance_job is not None and not issuance_job.finished
    may_complete = user.user_role is Role.AFTERSALES
    destinations = sorted({v.destination for v in letter_request.vehicles}, key=destination_name)
    outlets = None
    if review is not None:
        outlets = [
            {"code": code, "name": destination_name(code), "outlets": review.outlets.get(code, [])}
            for code in destinations
            if lookup_country(code) is not None
        ]
    counts = {verdict: sum(1 for r in rows if (r["today"] or r["verdict"]) == verdict) for verdict in VERDICT_LABELS}
    page = render_template(
        "ui/requests/detail.html",
        letter_request=letter_request,
        status_label=label(STATUS_LABELS, letter_request.status),
        rows=rows,
        counts=counts,
        verdict_labels={k: str(v) for k, v in VERDICT_LABELS.items()},
        review=review,
        outlets=outlets,
        form=form if may_decide else None,
        ticked_approve=set(form.approve.data or []) if may_decide and form is not None else set(),
        ticked_reject=set(form.reject.data or []) if may_decide and form is not None else set(),
        letter_number=letter_number,
        pending_letter=pending_letter,
        issuance_job=issuance_job,
        job_in_progress=in_progress,
        job_state_label=label(JOB_STATE_LABELS, issuance_job.state) if issuance_job is not None else "",
        completion_form=(
            CompletionForm(formdata=None) if pending_letter is not None and may_complete and not in_progress else None
        ),
        is_staff=user.user_role in STAFF,
        **history_context(session, user, object_type="request", object_id=letter_request.id),
        changed=sum(1 for r in rows if r["changed"]),
        error=error if not may_decide else None,
    )
    return page, status


@requests_ui.get("/<int(max=2147483647):request_id>")
@requires(*READERS)
def detail(request_id: int):  # type: ignore[no-untyped-def]
    letter_request = request_service.get_request(session=db_session(), user=current_user(), request_id=request_id)
    return _render_request(letter_request)


def _check_decision(form: DecisionForm, action: str, today: dt.date) -> bool:
    """What can be told before asking the service: the right boxes ticked, a reason given."""
    ok = True
    approve, reject = form.approve.data or [], form.reject.data or []
    reason = " ".join((form.reason.data or "").split())
    if action not in ACTIONS:
        form.form_errors.append(_("Choose one of the decision buttons."))
        return False
    if reject and not reason:
        form.reason.errors.append(_("Give the reason for rejecting the ticked vehicles."))
        ok = False
    if action == "selected" and not approve:
        form.approve.errors.append(_("Tick the vehicles to approve under Approve."))
        ok = False
    if action == "reject":
        if not reject:
            form.reject.errors.append(_("Tick the vehicles to reject under Reject."))
            ok = False
        if approve:
            form.approve.errors.append(
                _("Vehicles are ticked under Approve: use Approve selected to approve them and reject the others.")
            )
            ok = False
    both = sorted(set(approve) & set(reject))
    if both:
        form.reject.errors.append(_("Ticked both to approve and to reject: %(vins)s", vins=", ".join(both)))
        ok = False
    if form.valid_until.data is not None and form.valid_until.data < today:
        form.valid_until.errors.append(_("The letter cannot end before today (%(today)s).", today=today.isoformat()))
        ok = False
    return ok


def _place_decision_errors(form: DecisionForm, error: IssuerError) -> dict[str, list[str]]:
    """Put the service's problems beside the vehicles (and fields) they name."""
    row_errors: dict[str, list[str]] = {}
    details: Any = error.details
    if isinstance(details, Sequence) and not isinstance(details, str):
        for problem in details:
            if not isinstance(problem, Mapping) or "vin" not in problem or "message" not in problem:
                continue
            vin, message = str(problem["vin"]), str(problem["message"])
            if problem.get("reasons"):
                message = _("Refused today: %(reasons)s", reasons=" ".join(reason_texts(problem["reasons"])))
            elif message == "a rejection needs a reason":
                form.reason.errors.append(_("Give the reason for rejecting the ticked vehicles."))
                continue
            row_errors.setdefault(vin, []).append(message)
    if isinstance(details, Mapping) and "approved" in details and "limit" in details:
        form.approve.errors.append(
            _(
                "One letter holds at most %(limit)s vehicles; approve them in parts.",
                limit=f"{int(details['limit']):,}",
            )
        )
    form.form_errors.append(error.message)
    return row_errors


@requests_ui.post("/<int(max=2147483647):request_id>/decision")
@requires(Role.AFTERSALES)
def decide(request_id: int):  # type: ignore[no-untyped-def]
    """Apply the decision; approving issues the letter, whose page is shown next."""
    user = current_user()
    session = db_session()
    letter_request = request_service.get_request(session=session, user=user, request_id=request_id)
    form = DecisionForm()
    action = request.form.get("action", "")
    if not (form.validate_on_submit() and _check_decision(form, action, clock.today_in_china())):
        return _render_request(letter_request, form=form, status=422)
    reason = form.reason.data or ""
    try:
        decision = issuing.decide(
            session=session,
            user=user,
            request_id=request_id,
            approve="all_eligible" if action == "all_eligible" else list(form.approve.data or []),
            reject=[(vin, reason) for vin in form.reject.data or []],
            note=form.note.data or "",
            valid_until=form.valid_until.data,
        )
    except (ValidationFailed, Conflict) as error:
        session.rollback()
        letter_request = request_service.get_request(session=session, user=user, request_id=request_id)
        row_errors = _place_decision_errors(form, error)
        return _render_request(letter_request, form=form, row_errors=row_errors, error=error, status=error.http_status)
    if decision.job is not None:
        flash(
            _(
                "Letter %(number)s for %(count)d vehicle(s) is being sealed; this page shows when it is ready.",
                number=decision.job.letter_number,
                count=decision.job.vehicle_count,
            ),
            "success",
        )
        return redirect(url_for("requests_ui.detail", request_id=request_id))
    if decision.letter is not None:
        flash(
            _(
                "Letter %(number)s issued for %(count)d vehicle(s).",
                number=decision.letter.number,
                count=len(decision.approved),
            ),
            "success",
        )
        return redirect(url_for("letters_ui.detail", number=decision.letter.number))
    flash(_("Request %(id)d rejected; the exporter is told the reason.", id=request_id), "success")
    return redirect(url_for("requests_ui.detail", request_id=request_id))


@requests_ui.post("/<int(max=2147483647):request_id>/completion")
@requires(Role.AFTERSALES)
def complete(request_id: int):  # type: ignore[no-untyped-def]
    """Finish issuing the request's pending letter: the decision is called again, which seals
    the reserved letter with its number, vehicles and outlets (nothing is decided anew)."""
    user = current_user()
    session = db_session()
    request_service.get_request(session=session, user=user, request_id=request_id)  # 404 for others
    if not CompletionForm().validate_on_submit():
        flash(_("The form had expired; try again."), "error")
        return redirect(url_for("requests_ui.detail", request_id=request_id))
    try:
        decision = issuing.decide(session=session, user=user, request_id=request_id, approve=[], reject=[], note="")
    except (ValidationFailed, Conflict) as error:
        session.rollback()
        flash(error.message, "error")
        return redirect(url_for("requests_ui.detail", request_id=request_id))
    if decision.job is not None:
        flash(_("Letter %(number)s is queued for sealing again.", number=decision.job.letter_number), "success")
        return redirect(url_for("requests_ui.detail", request_id=request_id))
    if decision.letter is None:  # cannot happen for a decided request; say so rather than guess
        flash(_("Request %(id)d has no letter to finish.", id=request_id), "error")
        return redirect(url_for("requests_ui.detail", request_id=request_id))
    flash(_("Letter %(number)s issued.", number=decision.letter.number), "success")
    return redirect(url_for("letters_ui.detail", number=decision.letter.number))
