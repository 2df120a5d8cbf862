"""Pages under /precheck: the exporter checks a list of vehicles (pasted or uploaded), sees a
verdict for each with every reason in plain words, and sends each manufacturer its part.

The list is read by ``issuer.services.declarations`` and judged by the request service's split
precheck; nothing is stored until the exporter sends a part, and then the part is read and
judged again on the server (the list comes back from the browser in a hidden field).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from werkzeug.routing import BuildError
from wtforms import DateField, HiddenField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from issuer import clock
from issuer.domain.eligibility import REASON_TEXT, ReasonCode, VehicleDeclaration, Verdict
from issuer.errors import NotFound, ValidationFailed
from issuer.models import Manufacturer, Role
from issuer.schemas.requests import MAX_VEHICLES
from issuer.services import declarations
from issuer.services.declarations import DeclarationsRejected, DeclaredList, LineError
from issuer.services.registry import parse_iso_date
from issuer.services.requests import SplitPrecheck, precheck_split
from issuer.web.auth import current_user, requires
from issuer.web.session import db_session
from issuer.web.ui.forms import show_service_error

precheck = Blueprint("precheck", __name__, url_prefix="/precheck")

# A pasted 10,000-vehicle list, or the hidden list of a part, is about 1 MB: more than Flask's
# default 500 kB for form fields, well under the app's MAX_CONTENT_LENGTH.
MAX_FORM_BYTES = 8 * 1024 * 1024
MAX_LISTED_ERRORS = 50

COLUMN_HELP: tuple[tuple[str, Any], ...] = (
    ("vin", _l("Vehicle identification number, 17 characters (required).")),
    ("brand", _l("Brand as on the Motor Vehicle Registration Certificate (required).")),
    ("model", _l("Model as on the registration certificate (required).")),
    ("registration_date", _l("Registration date (注册登记日期) on the certificate, YYYY-MM-DD (required).")),
    ("destination", _l("Destination country: ISO 3166-1 two-letter code such as KZ or RU (required).")),
    (
        "export_transfer_date",
        _l("Date of the transfer registration for export (转让登记待出口日期), YYYY-MM-DD, when done (optional)."),
    ),
    ("note", _l("Your own note, not checked (optional). The template's example row says EXAMPLE here: delete it.")),
)

VERDICT_LABELS = {
    Verdict.ELIGIBLE.value: _l("Letter can be issued"),
    Verdict.NOT_REQUIRED.value: _l("No letter needed"),
    Verdict.REFUSED.value: _l("Refused"),
}


@precheck.before_app_request
def allow_large_lists() -> None:
    """Raise the form-field limit for these pages only, before the CSRF check reads the form."""
    if request.endpoint in ("precheck.index", "precheck.submit"):
        request.max_form_memory_size = MAX_FORM_BYTES


# -- forms -----------------------------------------------------------------------------------


class PrecheckForm(FlaskForm):
    application_date = DateField(
        _l("Export-license application date"),
        validators=[InputRequired(_l("Enter the date you apply (or plan to apply) for the export license."))],
        default=clock.today_in_china,
    )
    reference = StringField(
        _l("Reference (optional)"),
        validators=[Optional(), Length(max=200, message=_l("At most 200 characters."))],
    )
    vehicles = TextAreaField(_l("Vehicles, pasted from a spreadsheet"))
    upload = FileField(_l("Or upload a CSV or XLSX file"))


class SendForm(FlaskForm):
    """Sends one manufacturer's part of the checked list; every hidden value is checked again."""

    manufacturer = HiddenField(validators=[InputRequired(), Length(max=32)])
    application_date = HiddenField(validators=[InputRequired(), Length(max=10)])
    reference = HiddenField(validators=[Optional(), Length(max=200)])
    vehicles = HiddenField(validators=[InputRequired()])
    supersedes = StringField(
        _l("Corrects letter (optional)"),
        validators=[Optional(), Length(max=48, message=_l("At most 48 characters."))],
    )


# -- what the pages show ---------------------------------------------------------------------


def _in_language(zh: str, en: str) -> str:
    return zh if str(get_locale()) == "zh" else en


def _reason_texts(reasons: Sequence[ReasonCode], *, zh: bool) -> list[str]:
    return [REASON_TEXT[reason][0 if zh else 1] for reason in reasons]


@dataclass
class VerdictRow:
    line: int
    vin: str
    brand: str
    model: str
    registration_date: dt.date
    destination: str
    destination_name: str
    verdict: str
    codes: tuple[str, ...]
    reasons: list[str]
    letter_required: bool
    letter_not_needed_from: dt.date | None


@dataclass
class Section:
    """One manufacturer's part of the list."""

    code: str
    name: str
    rows: list[VerdictRow]
    counts: dict[str, int]
    payload: str  # the part's declarations, for its send form
    warnings: list[str] = field(default_factory=list)

    @property
    def sendable(self) -> int:
        return self.counts[Verdict.ELIGIBLE.value] + self.counts[Verdict.NOT_REQUIRED.value]

    @property
    def correctable(self) -> int:
        """Vehicles refused only because a valid letter covers them: a request correcting that
        letter (``supersedes``) could still get them a new one."""
        return sum(1 for row in self.rows if row.codes == (ReasonCode.ALREADY_COVERED.value,))


@dataclass
class UnassignedRow:
    line: int
    vin: str
    brand: str
    model: str
    reasons: list[str]


@dataclass
class Report:
    sections: list[Section]
    unassigned: list[UnassignedRow]
    warnings: list[str]
    total: int


def _manufacturer_name(manufacturer: Manufacturer) -> str:
    return _in_language(manufacturer.name, manufacturer.name_en or manufacturer.name)


def _countries_warning(countries: Sequence[str]) -> str:
    return _(
        "The vehicles go to %(count)d countries (%(countries)s). An export license names one importing "
        "country, so one license per country is needed.",
        count=len(countries),
        countries=", ".join(countries),
    )


def _report(split: SplitPrecheck, declared: DeclaredList) -> Report:
    zh = str(get_locale()) == "zh"  # once, not per vehicle: a list may hold 10,000
    sections = []
    for group in split.groups:
        part = [declared.vehicles[i] for i in group.indexes]
        rows = []
        for index, declaration, verdict in zip(group.indexes, part, group.assessment.vehicles, strict=True):
            country = verdict.destination
            rows.append(
                VerdictRow(
                    line=declared.lines[index],
                    vin=verdict.vin,
                    brand=declaration.brand,
                    model=declaration.model,
                    registration_date=declaration.registration_date,
                    destination=country.alpha2 if country else declaration.destination.strip().upper(),
                    destination_name=(country.name_zh if zh else country.name_en) if country else "",
                    verdict=verdict.verdict.value,
                    codes=tuple(r.value for r in verdict.reasons),
                    reasons=_reason_texts(verdict.reasons, zh=zh),
                    letter_required=verdict.letter_required,
                    letter_not_needed_from=verdict.letter_not_needed_from,
                )
            )
        counts = Counter(row.verdict for row in rows)
        section = Section(
            code=group.manufacturer.code,
            name=_manufacturer_name(group.manufacturer),
            rows=rows,
            counts={v.value: counts.get(v.value, 0) for v in Verdict},
            payload=declarations.encode(part),
        )
        destinations = sorted({v.destination.alpha2 for v in group.assessment.vehicles if v.destination})
        if len(split.groups) > 1 and len(destinations) > 1:
            section.warnings.append(_countries_warning(destinations))
        sections.append(section)
    unassigned = [
        UnassignedRow(
            line=declared.lines[index],
            vin=vin,
            brand=declared.vehicles[index].brand,
            model=declared.vehicles[index].model,
            reasons=_reason_texts([reason], zh=zh)
            if reason.value != "VIN_NOT_MANUFACTURER"
            else [_("No manufacturer hosted here holds this VIN's WMI (its first characters).")],
        )
        for index, vin, reason in split.unassigned
    ]
    warnings = []
    if len(sections) > 1:
        warnings.append(
            _(
                "The vehicles belong to %(count)d manufacturers (%(codes)s). Each issues its own letter, so each "
                "part below is sent as its own request.",
                count=len(sections),
                codes=", ".join(s.code for s in sections),
            )
        )
    countries = sorted({v.destination.alpha2 for g in split.groups for v in g.assessment.vehicles if v.destination})
    if len(countries) > 1:
        warnings.append(_countries_warning(countries))
    return Report(sections=sections, unassigned=unassigned, warnings=warnings, total=len(declared.vehicles))


def _line_error_text(error: LineError) -> str:
    texts = {
        "columns": lambda: _(
            "found %(count)s columns; expected %(low)d to %(high)d in this order: %(names)s",
            count=error.value,
            low=len(declarations.REQUIRED_COLUMNS),
            high=len(declarations.COLUMNS),
            names=", ".join(declarations.COLUMNS),
        ),
        "header": lambda: _("the header lacks the column(s) %(names)s", names=error.value),
        "empty": lambda: _("%(column)s is empty", column=error.column),
        "too_long": lambda: _("%(column)s is longer than %(limit)d characters", column=error.column, limit=error.limit),
        "date": lambda: _("%(column)s '%(value)s' is not a date YYYY-MM-DD", column=error.column, value=error.value),
        "control": lambda: _("%(column)s contains a control character", column=error.column),
        "example": lambda: _("this is the template's example row; delete it or clear its note"),
        "too_many": lambda: _(
            "the list holds more than %(limit)s vehicles; check at most %(limit)s at once",
            limit=f"{MAX_VEHICLES:,}",
        ),
        "nothing": lambda: _("the list holds no vehicles"),
        "file_type": lambda: _("%(name)s is not a CSV or XLSX file; use the template", name=error.value),
        "not_xlsx": lambda: _("%(name)s is not an XLSX workbook", name=error.value),
        "file_large": lambda: _(
            "%(name)s is larger than %(size)d MB", name=error.value, size=error.limit // (1024 * 1024)
        ),
        "file_empty": lambda: _("%(name)s is empty", name=error.value),
        "file": lambda: error.value,
    }
    text = texts.get(error.problem, lambda: error.message)()
    return _("line %(line)d: %(problem)s", line=error.line, problem=text) if error.line is not None else text


def _list_errors(rejected: DeclarationsRejected) -> list[str]:
    shown = [_line_error_text(e) for e in rejected.errors[:MAX_LISTED_ERRORS]]
    hidden = len(rejected.errors) - len(shown)
    if hidden > 0:
        shown.append(_("… and %(count)d more problems.", count=hidden))
    return shown


def _page(form: PrecheckForm, *, report: Report | None = None, send_form: SendForm | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    return (
        render_template(
            "ui/precheck/index.html",
            form=form,
            report=report,
            send_form=send_form,
            column_help=COLUMN_HELP,
            verdict_labels={verdict: str(label) for verdict, label in VERDICT_LABELS.items()},
            max_vehicles=MAX_VEHICLES,
            max_upload_mb=declarations.MAX_UPLOAD_BYTES // (1024 * 1024),
        ),
        status,
    )


def _run_split(application_date: dt.date, declared: DeclaredList) -> Report:
    split = precheck_split(
        session=db_session(),
        exporter=current_user().exporter,
        application_date=application_date,
        vehicles=declared.vehicles,
    )
    return _report(split, declared)


# -- views -----------------------------------------------------------------------------------


@precheck.route("", methods=["GET", "POST"])
@requires(Role.EXPORTER)
def index():  # type: ignore[no-untyped-def]
    """The list form; posted, the verdicts per manufacturer below it."""
    form = PrecheckForm()
    if request.method != "POST":  # GET, and HEAD, which must answer as GET does
        return _page(form)
    valid = form.validate_on_submit()
    text = form.vehicles.data or ""
    upload = form.upload.data
    if text.strip() and upload:
        form.upload.errors = [_("Paste the vehicles or upload a file, not both.")]
        valid = False
    elif not text.strip() and not upload:
        form.vehicles.errors = [_("Paste the vehicles here, or upload a file below.")]
        valid = False
    if not valid:
        return _page(form, status=422)
    try:
        if upload:
            declared = declarations.read_upload(upload.stream, upload.filename or "")
        else:
            declared = declarations.parse_pasted(text)
    except DeclarationsRejected as rejected:
        (form.upload if upload else form.vehicles).errors = _list_errors(rejected)
        return _page(form, status=422)
    finally:
        if upload:
            upload.close()
    assert form.application_date.data is not None  # noqa: S101 — required and validated above
    return _page(form, report=_run_split(form.application_date.data, declared))


def _pasted_form(application_date: dt.date, reference: str, vehicles: Sequence[VehicleDeclaration]) -> PrecheckForm:
    """The list form filled with a part sent back, as if pasted, so it can be checked again."""
    lines = ["\t".join(declarations.COLUMNS[:6])]
    for v in vehicles:
        transfer = v.export_transfer_date.isoformat() if v.export_transfer_date else ""
        lines.append(
            "\t".join([v.vin, v.brand, v.model, v.registration_date.isoformat(), v.destination, transfer]).rstrip("\t")
        )
    return PrecheckForm(
        formdata=None, application_date=application_date, reference=reference, vehicles="\n".join(lines)
    )


def _request_page(request_id: int) -> str:
    try:
        return url_for("requests_ui.detail", request_id=request_id)
    except BuildError:  # the request pages are not there (yet)
        return f"/requests/{request_id}"


HIDDEN_FIELDS = ("manufacturer", "application_date", "reference", "vehicles")


@precheck.post("/submit")
@requires(Role.EXPORTER)
def submit():  # type: ignore[no-untyped-def]
    """Send one manufacturer's part: read and judge it again, then file the request."""
    form = SendForm()
    form.validate_on_submit()
    vehicles: tuple[VehicleDeclaration, ...] = ()
    application_date: dt.date | None = None
    if not any(getattr(form, name).errors for name in HIDDEN_FIELDS):
        try:
            application_date = parse_iso_date(form.application_date.data or "", what="application_date")
            vehicles = declarations.decode(form.vehicles.data or "")
        except (ValueError, declarations.DamagedList):
            application_date = None
    if application_date is None or not vehicles:
        page_form = PrecheckForm(formdata=None)
        page_form.form_errors.append(
            _(
                "The list of vehicles sent with the form was changed or is damaged. Nothing was sent; "
                "check the vehicles again."
            )
        )
        return _page(page_form, status=422)
    if form.supersedes.errors:
        return _resubmit_page(form, application_date, vehicles)
    manufacturer = (form.manufacturer.data or "").strip().upper()
    try:
        letter_request = declarations.file_part(
            session=db_session(),
            user=current_user(),
            manufacturer_code=manufacturer,
            application_date=application_date,
            reference=form.reference.data or "",
            vehicles=vehicles,
            supersedes=(form.supersedes.data or "").strip() or None,
        )
    except declarations.NotThisManufacturers as error:
        shown = ", ".join(error.vins[:5]) + (" …" if len(error.vins) > 5 else "")
        message = _(
            "Nothing was sent: %(count)d of these vehicles are not vehicles of %(manufacturer)s (%(vins)s). "
            "They are shown below under their own manufacturer, if it is hosted here.",
            count=len(error.vins),
            manufacturer=manufacturer,
            vins=shown,
        )
        return _resubmit_page(form, application_date, vehicles, page_errors=[message])
    except declarations.NothingToSend:
        form.form_errors.append(
            _(
                "Nothing was sent: every vehicle of this part is refused, so the manufacturer could put none "
                "in a letter."
            )
        )
        return _resubmit_page(form, application_date, vehicles)
    except ValidationFailed as error:
        if isinstance(error.details, dict) and "supersedes" in error.details:
            form.supersedes.errors = [
                _(
                    "%(number)s is not a valid letter of yours from %(manufacturer)s; only a valid letter can be "
                    "superseded.",
                    number=(form.supersedes.data or "").strip(),
                    manufacturer=manufacturer,
                )
            ]
        else:
            show_service_error(form, error)
        return _resubmit_page(form, application_date, vehicles)
    flash(
        _(
            "Request %(id)d sent to %(manufacturer)s with %(count)d vehicles.",
            id=letter_request.id,
            manufacturer=manufacturer,
            count=len(vehicles),
        ),
        "success",
    )
    return redirect(_request_page(letter_request.id))


def _resubmit_page(
    form: SendForm,
    application_date: dt.date,
    vehicles: Sequence[VehicleDeclaration],
    *,
    page_errors: Sequence[str] = (),
):  # type: ignore[no-untyped-def]
    """The part sent back, checked again and shown with the send form's errors in its section
    (what was typed kept); ``page_errors`` go to the top of the page."""
    page_form = _pasted_form(application_date, form.reference.data or "", vehicles)
    page_form.form_errors.extend(page_errors)
    # Line numbers are those of the list as put back into the text box (line 1 is its header).
    declared = DeclaredList(tuple(vehicles), tuple(range(2, len(vehicles) + 2)))
    return _page(page_form, report=_run_split(application_date, declared), send_form=form, status=422)


@precheck.get("/template.<fmt>")
@requires(Role.EXPORTER)
def template(fmt: str):  # type: ignore[no-untyped-def]
    """The list template: the header row and one example row, as XLSX or CSV."""
    if fmt == "csv":
        body, mimetype = declarations.template_csv(), "text/csv; charset=utf-8"
    elif fmt == "xlsx":
        body = declarations.template_xlsx(
            column_help=[(name, str(text)) for name, text in COLUMN_HELP],
            sheet_title="vehicles",
            help_title=_("Columns"),
        )
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        raise NotFound(f"no template as {fmt}")
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename=precheck-template.{fmt}"
    return response
