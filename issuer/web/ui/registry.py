"""Pages under /registry: the after-sales team's registries.

The outlet registry (list, filter, add, edit, deactivate, import), the production registry
(import in the background with a progress page), the negative list of exporters, and the
outlet coverage chart. Every page works on the signed-in user's own manufacturer, so another
manufacturer's outlets, jobs and blocks cannot be reached at all (a 404, never a 403 that would
tell they exist).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import BooleanField, DateField, EmailField, SelectField, StringField, TelField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from issuer import clock
from issuer.domain.countries import all_countries, lookup_country
from issuer.errors import Conflict, ImportRejected, IssuerError, NotFound, ValidationFailed
from issuer.models import Exporter, ImportJob, ImportState, Manufacturer, Outlet, OutletVersion, Role
from issuer.models.outlet import OUTLET_FIELDS
from issuer.services import audit, import_jobs, organisations
from issuer.services import outlets as outlet_service
from issuer.services.coverage_report import CoverageReport, coverage_report
from issuer.web.auth import current_user, requires
from issuer.web.session import db_session
from issuer.web.ui.forms import show_service_error

registry = Blueprint("registry", __name__, url_prefix="/registry")

STAFF = (Role.AFTERSALES, Role.MANUFACTURER_ADMIN)
IMPORTS_FOLDER = "imports"


# -- shared -----------------------------------------------------------------------------------


def _own_manufacturer() -> Manufacturer:
    """The manufacturer every registry page works on: the signed-in staff member's own."""
    manufacturer = current_user().manufacturer
    if manufacturer is None:  # staff accounts always belong to a manufacturer
        raise NotFound("this account belongs to no manufacturer")
    return manufacturer


def country_name(code: str) -> str:
    """A country's name in the page's language (the code itself when it is not a destination)."""
    country = lookup_country(code or "")
    if country is None:
        return code
    return country.name_zh if str(get_locale()) == "zh" else country.name_en


@registry.context_processor
def _registry_context() -> dict[str, Any]:
    return {"country_name": country_name}


def _imports_dir() -> Path:
    """Where uploads wait for their import: ``ISSUER_IMPORTS_DIR`` or the instance folder."""
    configured = current_app.config.get("ISSUER_IMPORTS_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / IMPORTS_FOLDER


def _rejected_lines(error: IssuerError) -> list[dict[str, Any]]:
    details = error.details if isinstance(error.details, list) else []
    return [d for d in details if isinstance(d, dict)]


# -- outlets ----------------------------------------------------------------------------------


ACTIVE_CHOICES = [
    SelectChoice("all", _l("All")),
    SelectChoice("active", _l("Active")),
    SelectChoice("inactive", _l("Inactive")),
]


class OutletFilterForm(FlaskForm):
    """The list's filters (a GET form: it changes nothing, so it carries no CSRF token)."""

    class Meta:
        csrf = False

    country = SelectField(_l("Country"), choices=[], validate_choice=False)
    active = SelectField(_l("Status"), choices=ACTIVE_CHOICES, default="all")


class OutletFields(FlaskForm):
    country = StringField(_l("Country"), validators=[InputRequired(_l("Enter the country's ISO code.")), Length(max=8)])
    name = StringField(_l("Outlet name"), validators=[InputRequired(_l("Enter the outlet's name."))])
    provider = StringField(
        _l("Service provider"), validators=[InputRequired(_l("Enter the company that runs the outlet."))]
    )
    address = TextAreaField(_l("Address"), validators=[InputRequired(_l("Enter the outlet's address."))])
    city = StringField(_l("City"))
    phone = TelField(_l("Phone"))
    email = EmailField(_l("E-mail"))
    brands = StringField(_l("Brands"))
    valid_from = DateField(_l("Valid from"), validators=[InputRequired(_l("Enter the first day of service."))])
    valid_to = DateField(_l("Valid to"), validators=[Optional()])
    active = BooleanField(_l("Active (printed on new letters)"), default=True)

    def values(self) -> dict[str, Any]:
        """The fields as the outlet service takes them."""
        return {
            "country": (self.country.data or "").strip(),
            "name": self.name.data or "",
            "provider": self.provider.data or "",
            "address": self.address.data or "",
            "city": self.city.data or "",
            "phone": self.phone.data or "",
            "email": (self.email.data or "").strip(),
            "brands": self.brands.data or "",
            "valid_from": self.valid_from.data,
            "valid_to": self.valid_to.data,
            "active": bool(self.active.data),
        }


class OutletNewForm(OutletFields):
    code = StringField(_l("Outlet code"), validators=[InputRequired(_l("Enter a code.")), Length(max=64)])


class OutletActiveForm(FlaskForm):
    """The deactivate / reactivate button (the value comes from the button pressed)."""


class OutletImportForm(FlaskForm):
    file = FileField(
        _l("Outlet file (CSV or XLSX)"),
        validators=[
            FileRequired(_l("Choose a file.")),
            FileAllowed(list(import_jobs.ALLOWED_SUFFIXES), _l("Choose a .csv or .xlsx file.")),
        ],
    )


def _filter_country(raw: str) -> tuple[str, str | None]:
    """The country filter's code, and the error when it is not a destination."""
    code = raw.strip().upper()
    if code and lookup_country(code) is None:
        return code, _("%(code)s is not an ISO 3166-1 country code.", code=code)
    return code, None


@registry.get("/outlets")
@requires(*STAFF)
def outlets():  # type: ignore[no-untyped-def]
    manufacturer = _own_manufacturer()
    session = db_session()
    form = OutletFilterForm(request.args)
    code, error = _filter_country(request.args.get("country", ""))
    active = {"active": True, "inactive": False}.get(request.args.get("active", "all"))
    present = sorted(
        {o.country for o in outlet_service.list_outlets(session=session, manufacturer=manufacturer)},
        key=country_name,
    )
    choices = [SelectChoice("", _("All countries"))] + [SelectChoice(c, f"{country_name(c)} ({c})") for c in present]
    if code and code not in present:
        choices.append(SelectChoice(code, f"{country_name(code)} ({code})"))
    form.country.choices = choices
    form.country.data = code
    status = 200
    rows: list[Outlet] = []
    if error:
        form.country.errors = [error]
        status = 422
    else:
        rows = outlet_service.list_outlets(
            session=session, manufacturer=manufacturer, country=code or None, active=active
        )
    return (
        render_template(
            "ui/registry/outlets.html",
            form=form,
            outlets=rows,
            toggle=OutletActiveForm(),
            filtered=bool(code) or active is not None,
            today=clock.today_in_china(),
        ),
        status,
    )


def _place_outlet_error(form: OutletFields, error: IssuerError) -> None:
    if isinstance(error, Conflict) and hasattr(form, "code"):
        form.code.errors = [*form.code.errors, error.message]
        return
    show_service_error(form, error)


@registry.route("/outlets/new", methods=["GET", "POST"])
@requires(*STAFF)
def outlet_new():  # type: ignore[no-untyped-def]
    manufacturer = _own_manufacturer()
    form = OutletNewForm()
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                outlet = outlet_service.create_outlet(
                    session=db_session(),
                    manufacturer=manufacturer,
                    values={"code": form.code.data or "", **form.values()},
                    actor=current_user().email,
                )
            except (ValidationFailed, Conflict) as error:
                db_session().rollback()
                _place_outlet_error(form, error)
            else:
                flash(_("Outlet %(code)s added.", code=outlet.code), "success")
                return redirect(url_for("registry.outlet_edit", code=outlet.code), 303)
        return _outlet_form_page(form, outlet=None), 422
    return _outlet_form_page(form, outlet=None)


@dataclass(frozen=True)
class VersionRow:
    version: OutletVersion
    changed: list[str]  # the fields this version changed, compared with the one before


def _version_rows(outlet: Outlet) -> list[VersionRow]:
    rows: list[VersionRow] = []
    previous: OutletVersion | None = None
    for version in outlet.versions:
        changed = [] if previous is None else [f for f in OUTLET_FIELDS if getattr(version, f) != getattr(previous, f)]
        rows.append(VersionRow(version=version, changed=changed))
        previous = version
    return list(reversed(rows))  # newest first


FIELD_LABELS = {
    "country": _l("Country"),
    "name": _l("Outlet name"),
    "provider": _l("Service provider"),
    "address": _l("Address"),
    "city": _l("City"),
    "phone": _l("Phone"),
    "email": _l("E-mail"),
    "brands": _l("Brands"),
    "valid_from": _l("Valid from"),
    "valid_to": _l("Valid to"),
    "active": _l("Active"),
}
CHANGE_LABELS = {"created": _l("Added"), "updated": _l("Changed"), "import": _l("Imported")}


def _outlet_form_page(form: OutletFields, *, outlet: Outlet | None) -> str:
    return render_template(
        "ui/registry/outlet_form.html",
        form=form,
        outlet=outlet,
        versions=_version_rows(outlet) if outlet is not None else [],
        field_labels=FIELD_LABELS,
        change_labels=CHANGE_LABELS,
        toggle=OutletActiveForm(),
        countries=all_countries(),
    )


@registry.route("/outlets/<code>", methods=["GET", "POST"])
@requires(*STAFF)
def outlet_edit(code: str):  # type: ignore[no-untyped-def]
    manufacturer = _own_manufacturer()
    session = db_session()
    outlet = outlet_service.find_outlet(session, manufacturer, code)
    if request.method != "POST":  # GET, and HEAD, which must answer as GET does
        form = OutletFields(obj=outlet)
        return _outlet_form_page(form, outlet=outlet)
    form = OutletFields()
    if form.validate_on_submit():
        try:
            outlet = outlet_service.update_outlet(
                session=session,
                manufacturer=manufacturer,
                code=outlet.code,
                values=form.values(),
                actor=current_user().email,
            )
        except ValidationFailed as error:
            session.rollback()
            _place_outlet_error(form, error)
        else:
            flash(
                _("Outlet %(code)s saved (version %(version)s).", code=outlet.code, version=outlet.version), "success"
            )
            return redirect(url_for("registry.outlet_edit", code=outlet.code), 303)
    outlet = outlet_service.find_outlet(session, manufacturer, code)
    return _outlet_form_page(form, outlet=outlet), 422


@registry.post("/outlets/<code>/active")
@requires(*STAFF)
def outlet_active(code: str):  # type: ignore[no-untyped-def]
    """Deactivate or reactivate an outlet: a deactivated outlet is printed on no new letter."""
    manufacturer = _own_manufacturer()
    session = db_session()
    outlet = outlet_service.find_outlet(session, manufacturer, code)
    form = OutletActiveForm()
    if not form.validate_on_submit():
        flash(_("The form had expired; try again."), "error")
        return redirect(url_for("registry.outlet_edit", code=outlet.code), 303)
    active = request.form.get("active") == "1"
    target = request.form.get("next", "")
    back = url_for("registry.outlets") if target == "list" else url_for("registry.outlet_edit", code=outlet.code)
    try:
        outlet = outlet_service.update_outlet(
            session=session,
            manufacturer=manufacturer,
            code=outlet.code,
            values={"active": active},
            actor=current_user().email,
        )
    except ValidationFailed as error:
        # A stored outlet the rules no longer accept (e.g. edited outside the pages): say why,
        # on the page the button was pressed on, rather than a bare error page.
        session.rollback()
        flash(_("Outlet %(code)s was not changed: %(error)s", code=code.strip().upper(), error=error.message), "error")
        return redirect(back, 303)
    if active:
        flash(_("Outlet %(code)s is active again.", code=outlet.code), "success")
    else:
        flash(_("Outlet %(code)s is deactivated: new letters will not print it.", code=outlet.code), "success")
    return redirect(back, 303)


@registry.route("/outlets/import", methods=["GET", "POST"])
@requires(*STAFF)
def outlets_import():  # type: ignore[no-untyped-def]
    manufacturer = _own_manufacturer()
    form = OutletImportForm()
    result = None
    rejected: list[dict[str, Any]] | None = None
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            upload = form.file.data
            stored = None
            try:
                stored = import_jobs.store_upload(
                    upload.stream, directory=_imports_dir(), filename=upload.filename or ""
                )
                result = outlet_service.import_outlets(
                    session=db_session(),
                    manufacturer_code=manufacturer.code,
                    path=stored.path,
                    actor=current_user().email,
                )
                status = 200
            except ImportRejected as error:
                db_session().rollback()
                rejected = _rejected_lines(error)
                if not rejected:
                    form.file.errors = [*form.file.errors, error.message]
                    rejected = None
            finally:
                if stored is not None:
                    import_jobs.discard_file(stored.path)
    return render_template("ui/registry/outlets_import.html", form=form, result=result, rejected=rejected), status


# -- production registry ----------------------------------------------------------------------


class VehicleImportForm(FlaskForm):
    file = FileField(
        _l("Registry file (CSV or XLSX)"),
        validators=[
            FileRequired(_l("Choose a file.")),
            FileAllowed(list(import_jobs.ALLOWED_SUFFIXES), _l("Choose a .csv or .xlsx file.")),
        ],
    )
    skip_invalid = BooleanField(_l("Import the valid rows even if some rows are invalid"))


def _start_job(job_id: int) -> None:
    """Run the job in a thread of its own, or right now when ``ISSUER_INLINE_JOBS`` says so
    (tests, whose single shared connection a thread must not use; it defaults to TESTING)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    database = app.extensions["issuer.db"]
    inline = bool(app.config.get("ISSUER_INLINE_JOBS", app.testing))
    context = audit.current_context()

    def work() -> None:
        with app.app_context(), audit.acting_as(context):
            import_jobs.run_vehicle_import(
                database, job_id, commit_progress=import_jobs.commits_progress(database, own_thread=not inline)
            )

    if inline:
        work()
    else:
        threading.Thread(target=work, name=f"import-job-{job_id}", daemon=True).start()


@registry.route("/vehicles", methods=["GET", "POST"])
@requires(*STAFF)
def vehicles():  # type: ignore[no-untyped-def]
    manufacturer = _own_manufacturer()
    session = db_session()
    import_jobs.reap_abandoned(session, manufacturer_id=manufacturer.id)
    form = VehicleImportForm()
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            job = _queue_import(form, manufacturer)
            if job is not None:
                _start_job(job.id)
                return redirect(url_for("registry.import_job", job_id=job.id), 303)
    return (
        render_template(
            "ui/registry/vehicles.html",
            form=form,
            registered=import_jobs.count_registered(session, manufacturer_id=manufacturer.id),
            jobs=import_jobs.list_jobs(session, manufacturer_id=manufacturer.id),
            percent_of=import_jobs.percent_of,
            progress_of=import_jobs.progress_of,
        ),
        status,
    )


def _queue_import(form: VehicleImportForm, manufacturer: Manufacturer) -> ImportJob | None:
    """Store the upload and queue its job; None, with the reason beside the file field, when
    another import is still running, the file is of the wrong kind or unpacks too large."""
    session = db_session()
    upload = form.file.data
    stored = None
    try:
        import_jobs.refuse_if_busy(session, manufacturer_id=manufacturer.id)
        stored = import_jobs.store_upload(upload.stream, directory=_imports_dir(), filename=upload.filename or "")
        import_jobs.refuse_oversized(stored)
        return import_jobs.create_vehicle_import(
            session=session,
            manufacturer=manufacturer,
            stored=stored,
            filename=upload.filename or "",
            skip_invalid=bool(form.skip_invalid.data),
            actor=current_user().email,
        )
    except (ImportRejected, Conflict) as error:
        session.rollback()
        if stored is not None:
            import_jobs.discard_file(stored.path)
        if isinstance(error, Conflict):
            form.file.errors = [
                *form.file.errors,
                _("Another import of the registry is still running; wait until it ends."),
            ]
        else:
            form.file.errors = [*form.file.errors, error.message]
        return None


@registry.get("/vehicles/imports/<int:job_id>")
@requires(*STAFF)
def import_job(job_id: int):  # type: ignore[no-untyped-def]
    manufacturer = _own_manufacturer()
    import_jobs.reap_abandoned(db_session(), manufacturer_id=manufacturer.id)
    job = import_jobs.get_job(db_session(), manufacturer_id=manufacturer.id, job_id=job_id)
    return render_template(
        "ui/registry/import_job.html",
        job=job,
        status=import_jobs.status_of(job),
        finished=job.state in (ImportState.DONE.value, ImportState.FAILED.value),
    )


@registry.get("/vehicles/imports/<int:job_id>/status")
@requires(*STAFF)
def import_job_status(job_id: int):  # type: ignore[no-untyped-def]
    """The JSON twin of the job's page, polled by registry.js while the import runs."""
    manufacturer = _own_manufacturer()
    import_jobs.reap_abandoned(db_session(), manufacturer_id=manufacturer.id)
    job = import_jobs.get_job(db_session(), manufacturer_id=manufacturer.id, job_id=job_id)
    response = jsonify(import_jobs.status_of(job))
    response.headers["Cache-Control"] = "no-store"
    return response


# -- negative list ----------------------------------------------------------------------------


class BlockForm(FlaskForm):
    exporter = StringField(
        _l("Exporter code"), validators=[InputRequired(_l("Enter the exporter's code.")), Length(max=32)]
    )
    reason = TextAreaField(
        _l("Reason"), validators=[InputRequired(_l("Give the reason (it is kept on the list).")), Length(max=2000)]
    )


class LiftForm(FlaskForm):
    reason = StringField(_l("Reason for lifting (optional)"), validators=[Length(max=2000)])


def _exporter_name(exporter: Exporter) -> str:
    return exporter.name_en if str(get_locale()) != "zh" and exporter.name_en else exporter.name


def _blocks_page(  # type: ignore[no-untyped-def]
    form: BlockForm,
    *,
    status: int = 200,
    lift_error: str | None = None,
    lift_form: LiftForm | None = None,
    lifting: str | None = None,
):
    """The negative list. ``lifting`` names the exporter whose "Lift" failed: its row keeps the
    reason typed (``lift_form``) with ``lift_error`` beside it; an error on no row of the list
    (an exporter not on it) is shown at the top."""
    manufacturer = _own_manufacturer()
    session = db_session()
    entries = organisations.list_blocks(session, manufacturer_id=manufacturer.id)
    active = [b for b in entries if b.lifted_at is None]
    lifted = [b for b in entries if b.lifted_at is not None]
    blocked = {b.exporter_id for b in active}
    suggestions = [
        (e.code, _exporter_name(e))
        for e in organisations.exporters_asking(session, manufacturer_id=manufacturer.id)
        if e.id not in blocked
    ]
    return (
        render_template(
            "ui/registry/blocks.html",
            form=form,
            active=active,
            lifted=lifted,
            suggestions=suggestions,
            exporter_name=_exporter_name,
            lift_form=lift_form or LiftForm(formdata=None),
            lift_error=lift_error,
            lifting=lifting if lifting in {b.exporter.code for b in active} else None,
        ),
        status,
    )


@registry.route("/blocks", methods=["GET", "POST"])
@requires(*STAFF)
def blocks():  # type: ignore[no-untyped-def]
    manufacturer = _own_manufacturer()
    form = BlockForm()
    if request.method != "POST":  # GET, and HEAD, which must answer as GET does
        return _blocks_page(form)
    if form.validate_on_submit():
        try:
            block = organisations.block_exporter(
                session=db_session(),
                manufacturer_code=manufacturer.code,
                exporter_code=form.exporter.data or "",
                reason=form.reason.data or "",
                actor=current_user().email,
            )
        except (ValidationFailed, Conflict, NotFound) as error:
            db_session().rollback()
            if isinstance(error, ValidationFailed):
                show_service_error(form, error)
            else:
                form.exporter.errors = [*form.exporter.errors, error.message]
        else:
            flash(
                _("%(code)s is on the negative list: it gets no letters from now on.", code=block.exporter.code),
                "success",
            )
            return redirect(url_for("registry.blocks"), 303)
    return _blocks_page(form, status=422)


@registry.post("/blocks/<exporter_code>/lift")
@requires(*STAFF)
def block_lift(exporter_code: str):  # type: ignore[no-untyped-def]
    manufacturer = _own_manufacturer()
    form = LiftForm()
    if form.validate_on_submit():
        try:
            organisations.unblock_exporter(
                session=db_session(),
                manufacturer_code=manufacturer.code,
                exporter_code=exporter_code,
                reason=form.reason.data or "",
                actor=current_user().email,
            )
        except (Conflict, NotFound) as error:
            db_session().rollback()
            return _blocks_page(
                BlockForm(formdata=None),
                status=error.http_status,
                lift_error=error.message,
                lift_form=form,
                lifting=exporter_code.strip().upper(),
            )
        flash(_("%(code)s is off the negative list.", code=exporter_code.strip().upper()), "success")
        return redirect(url_for("registry.blocks"), 303)
    message = "; ".join(str(e) for errors in form.errors.values() for e in errors)
    return _blocks_page(
        BlockForm(formdata=None), status=422, lift_error=message, lift_form=form, lifting=exporter_code.strip().upper()
    )


# -- coverage ---------------------------------------------------------------------------------


PERIODS = {"all": None, "365": 365, "90": 90, "30": 30}
PERIOD_LABELS = {
    "all": _l("All requests"),
    "365": _l("Last 365 days"),
    "90": _l("Last 90 days"),
    "30": _l("Last 30 days"),
}
CHART_WIDTH = 360
CHART_BAR_WIDTH = 300  # the rest is for the vehicle count after each bar
CHART_ROW = 46
CHART_ROWS_MAX = 30


@dataclass(frozen=True)
class ChartRow:
    """One country of the coverage chart, laid out in the SVG's units."""

    label: str
    outlets_text: str
    title: str
    state: str
    y: int
    covered_width: float
    uncovered_width: float
    count_text: str


def _chart(report: CoverageReport) -> list[ChartRow]:
    rows: list[ChartRow] = []
    scale = CHART_BAR_WIDTH / report.max_vehicles if report.max_vehicles else 0.0
    for index, item in enumerate(report.countries[:CHART_ROWS_MAX]):
        name = country_name(item.country)
        label = name if len(name) <= 26 else name[:25] + "…"
        outlets_text = ngettext("%(num)d outlet", "%(num)d outlets", item.outlets) if item.outlets else _("no outlet")
        title = _(
            "%(country)s — active outlets: %(outlets)s · vehicles asked for: %(vehicles)s · requests: %(requests)s"
            " · without an outlet for their brand: %(uncovered)s",
            country=name,
            outlets=item.outlets,
            vehicles=item.vehicles,
            requests=item.requests,
            uncovered=item.uncovered,
        )
        count_text = str(item.vehicles) if item.vehicles else ""
        rows.append(
            ChartRow(
                label=f"{label} ({item.country})",
                outlets_text=outlets_text,
                title=title,
                state=item.state,
                y=index * CHART_ROW,
                covered_width=round(item.covered_vehicles * scale, 1),
                uncovered_width=round(item.uncovered * scale, 1),
                count_text=count_text,
            )
        )
    return rows


class CoverageFilterForm(FlaskForm):
    class Meta:
        csrf = False

    period = SelectField(
        _l("Requests filed"), choices=[SelectChoice(k, v) for k, v in PERIOD_LABELS.items()], default="all"
    )
    manufacturer = SelectField(_l("Manufacturer"), choices=[], validate_choice=False)


@registry.get("/coverage")
@requires(*STAFF, Role.PLATFORM_ADMIN)
def coverage():  # type: ignore[no-untyped-def]
    """Which destination countries have outlets today, and which were asked for without one."""
    user = current_user()
    session = db_session()
    form = CoverageFilterForm(request.args)
    if user.user_role is Role.PLATFORM_ADMIN:
        manufacturers = organisations.list_manufacturers(session)
        form.manufacturer.choices = [SelectChoice(m.code, f"{m.code} — {m.name}") for m in manufacturers]
        code = (request.args.get("manufacturer") or "").strip().upper()
        if not code:
            if not manufacturers:
                raise NotFound("there is no manufacturer yet")
            code = manufacturers[0].code
        manufacturer = organisations.get_manufacturer(session, code)
        form.manufacturer.data = manufacturer.code
    else:
        manufacturer = _own_manufacturer()
    period = request.args.get("period", "all")
    if period not in PERIODS:
        period = "all"
    form.period.data = period
    days = PERIODS[period]
    since = clock.today_in_china() - dt.timedelta(days=days - 1) if days else None
    report = coverage_report(session, manufacturer=manufacturer, since=since)
    chart = _chart(report)
    return render_template(
        "ui/registry/coverage.html",
        form=form,
        report=report,
        chart=chart,
        chart_width=CHART_WIDTH,
        chart_height=max(len(chart), 1) * CHART_ROW,
        bar_width=CHART_BAR_WIDTH,
        choose_manufacturer=user.user_role is Role.PLATFORM_ADMIN,
        shown=len(chart),
    )
