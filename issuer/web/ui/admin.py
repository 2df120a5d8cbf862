"""Pages under /admin: manufacturers (tenants), exporters, users and roles, seal keys.

Platform administrators manage every organisation and user; a manufacturer administrator
manages the staff and the seal keys of its own manufacturer only. Who may see which user or
manufacturer is decided by the services (``accounts.get_user``, ``organisations.manufacturer_for``):
anything else is a 404, like something that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import EmailField, IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from issuer.errors import Conflict, IssuerError, NotFound
from issuer.models import Manufacturer, ManufacturerType, Role, User
from issuer.models.manufacturer import DEFAULT_LETTER_VALIDITY_DAYS
from issuer.services import accounts, organisations
from issuer.services import keys as seal_keys
from issuer.web.auth import current_user, requires
from issuer.web.session import db_session
from issuer.web.ui import ROLE_LABELS
from issuer.web.ui.forms import show_service_error
from issuer.web.ui.history import history_context

admin = Blueprint("admin", __name__, url_prefix="/admin")

ADMINS = (Role.MANUFACTURER_ADMIN, Role.PLATFORM_ADMIN)

# The five kinds of enterprise, in plain words; only the first may issue letters (DOMAIN.md).
MANUFACTURER_TYPE_LABELS = {
    ManufacturerType.VEHICLE_MANUFACTURER: _l("Vehicle manufacturer listed by MIIT — may issue letters"),
    ManufacturerType.MODIFIED_VEHICLE_MANUFACTURER: _l("Modified-vehicle manufacturer — may not issue letters"),
    ManufacturerType.SALES_COMPANY: _l("Sales company — may not issue letters"),
    ManufacturerType.OVERSEAS_SALES_DEPARTMENT: _l("Overseas sales department — may not issue letters"),
    ManufacturerType.OVERSEAS_DEALER: _l("Overseas authorised dealer — may not issue letters"),
}


def type_label(value: str) -> str:
    try:
        return str(MANUFACTURER_TYPE_LABELS[ManufacturerType(value)])
    except ValueError:
        return value


def _show_error(form: FlaskForm, error: IssuerError, fields: Mapping[str, str] | None = None) -> int:
    """Put a service error beside its field; returns the status the page is answered with.

    A conflict names the field whose value is taken (``{"code": "GWM"}``); its message says
    why, so that message is what stands beside the field."""
    if isinstance(error, Conflict) and isinstance(error.details, Mapping) and error.details:
        error = Conflict(error.message, details={name: [error.message] for name in error.details})
    show_service_error(form, error, fields=fields)
    return error.http_status


T = TypeVar("T")


def _create(form: FlaskForm, create: Callable[[], T], fields: Mapping[str, str] | None = None) -> tuple[T | None, int]:
    """Run a "new …" page's service once its form is posted and valid.

    Returns what the service created, for the view to announce and redirect to, or ``None`` with
    the status the form page is shown with: 200 when it is first opened, 422 for bad input, and
    the service error's own status (its message beside the field) when the service refuses."""
    if request.method != "POST":
        return None, 200
    if not form.validate_on_submit():
        return None, 422
    try:
        return create(), 200
    except IssuerError as error:
        db_session().rollback()
        return None, _show_error(form, error, fields)


def _wmi_lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


# -- manufacturers -----------------------------------------------------------------------------


class ManufacturerEditForm(FlaskForm):
    name = StringField(_l("MIIT-listed name (Chinese)"), validators=[DataRequired(), Length(max=200)])
    name_en = StringField(_l("English name"), validators=[DataRequired(), Length(max=200)])
    type = SelectField(
        _l("Type"),
        choices=[SelectChoice(kind.value, label) for kind, label in MANUFACTURER_TYPE_LABELS.items()],
        default=ManufacturerType.VEHICLE_MANUFACTURER.value,
    )
    wmis = TextAreaField(_l("WMIs"))
    letter_validity_days = IntegerField(
        _l("Letter validity (days)"),
        validators=[Optional(), NumberRange(min=1, max=organisations.MAX_LETTER_VALIDITY_DAYS)],
    )


class ManufacturerForm(ManufacturerEditForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=organisations.MAX_CODE_CHARS)])
    uscc = StringField(_l("Unified social credit code"), validators=[DataRequired(), Length(max=30)])


MANUFACTURER_FIELDS = {"wmi": "wmis", "manufacturer_type": "type"}


@admin.get("/manufacturers")
@requires(Role.PLATFORM_ADMIN)
def manufacturers():  # type: ignore[no-untyped-def]
    session = db_session()
    return render_template(
        "ui/admin/manufacturers.html",
        manufacturers=organisations.list_manufacturers(session),
        signing_keys=seal_keys.signing_keys(session),
        type_label=type_label,
    )


@admin.route("/manufacturers/new", methods=["GET", "POST"])
@requires(Role.PLATFORM_ADMIN)
def manufacturer_new():  # type: ignore[no-untyped-def]
    form = ManufacturerForm()
    if request.method == "GET":
        form.letter_validity_days.data = DEFAULT_LETTER_VALIDITY_DAYS
    manufacturer, status = _create(
        form,
        lambda: organisations.create_manufacturer(
            session=db_session(),
            code=form.code.data or "",
            name=form.name.data or "",
            name_en=form.name_en.data or "",
            uscc=form.uscc.data or "",
            wmis=_wmi_lines(form.wmis.data),
            manufacturer_type=form.type.data or "",
            letter_validity_days=form.letter_validity_days.data,
        ),
        MANUFACTURER_FIELDS,
    )
    if manufacturer is not None:
        flash(_("Manufacturer %(code)s created.", code=manufacturer.code), "success")
        return redirect(url_for("admin.manufacturers"))
    return render_template(
        "ui/admin/manufacturer_form.html", form=form, manufacturer=None, type_label=type_label
    ), status


@admin.route("/manufacturers/<code>", methods=["GET", "POST"])
@requires(Role.PLATFORM_ADMIN)
def manufacturer_edit(code: str):  # type: ignore[no-untyped-def]
    session = db_session()
    manufacturer = organisations.get_manufacturer(session, code)
    form = ManufacturerEditForm(obj=manufacturer if request.method == "GET" else None)
    if request.method == "GET":
        form.wmis.data = "\n".join(str(w) for w in manufacturer.wmi_values())
    status = 200
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            old_name = manufacturer.name
            try:
                organisations.update_manufacturer(
                    session=session,
                    code=manufacturer.code,
                    name=form.name.data or "",
                    name_en=form.name_en.data or "",
                    manufacturer_type=form.type.data or "",
                    letter_validity_days=form.letter_validity_days.data,
                    wmis=_wmi_lines(form.wmis.data),
                    actor=current_user().email,
                )
            except IssuerError as error:
                session.rollback()
                manufacturer = organisations.get_manufacturer(session, code)
                status = _show_error(form, error, MANUFACTURER_FIELDS)
            else:
                flash(_("Manufacturer %(code)s saved.", code=manufacturer.code), "success")
                if manufacturer.name != old_name and seal_keys.current_key(session, manufacturer) is not None:
                    flash(
                        _(
                            "The current seal certificate still names the old name. Rotate the seal key, or "
                            "import a new CA-issued certificate, so that new letters are sealed under the new name."
                        ),
                        "warning",
                    )
                return redirect(url_for("admin.manufacturers"))
    return render_template(
        "ui/admin/manufacturer_form.html",
        form=form,
        manufacturer=manufacturer,
        type_label=type_label,
        **history_context(session, current_user(), object_type="manufacturer", object_id=manufacturer.code),
    ), status


# -- exporters ---------------------------------------------------------------------------------


class ExporterForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=organisations.MAX_CODE_CHARS)])
    name = StringField(_l("Name (Chinese)"), validators=[DataRequired(), Length(max=200)])
    name_en = StringField(_l("English name"), validators=[Optional(), Length(max=200)])
    uscc = StringField(_l("Unified social credit code"), validators=[DataRequired(), Length(max=30)])


@admin.get("/exporters")
@requires(Role.PLATFORM_ADMIN)
def exporters():  # type: ignore[no-untyped-def]
    return render_template("ui/admin/exporters.html", exporters=organisations.list_exporters(db_session()))


@admin.route("/exporters/new", methods=["GET", "POST"])
@requires(Role.PLATFORM_ADMIN)
def exporter_new():  # type: ignore[no-untyped-def]
    form = ExporterForm()
    exporter, status = _create(
        form,
        lambda: organisations.create_exporter(
            session=db_session(),
            code=form.code.data or "",
            name=form.name.data or "",
            name_en=form.name_en.data or "",
            uscc=form.uscc.data or "",
        ),
    )
    if exporter is not None:
        flash(_("Exporter %(code)s created.", code=exporter.code), "success")
        return redirect(url_for("admin.exporters"))
    return render_template("ui/admin/exporter_form.html", form=form), status


# -- users and roles ---------------------------------------------------------------------------


def _organisation_choices(form: FlaskForm, actor: User) -> None:
    """Fill the role and organisation selects with what ``actor`` may choose."""
    form.role.choices = [SelectChoice(role.value, str(ROLE_LABELS[role])) for role in accounts.assignable_roles(actor)]
    if actor.user_role is Role.PLATFORM_ADMIN:
        session = db_session()
        form.manufacturer.choices = [SelectChoice("", _("— none —"))] + [
            SelectChoice(m.code, f"{m.code} · {m.name}") for m in organisations.list_manufacturers(session)
        ]
        form.exporter.choices = [SelectChoice("", _("— none —"))] + [
            SelectChoice(e.code, f"{e.code} · {e.name}") for e in organisations.list_exporters(session)
        ]
    else:  # a manufacturer administrator's users belong to its own manufacturer, always
        del form.manufacturer
        del form.exporter


class UserRoleForm(FlaskForm):
    role = SelectField(_l("Role"), validators=[DataRequired()])
    manufacturer = SelectField(_l("Manufacturer"), validators=[Optional()])
    exporter = SelectField(_l("Exporter"), validators=[Optional()])


class UserForm(UserRoleForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(min=accounts.MIN_PASSWORD_CHARS, max=200)]
    )


class PasswordResetForm(FlaskForm):
    password = PasswordField(
        _l("New password"), validators=[DataRequired(), Length(min=accounts.MIN_PASSWORD_CHARS, max=200)]
    )


class ActiveForm(FlaskForm):
    """Deactivating or reactivating carries nothing but the CSRF token; the URL says which."""


def _organisation_codes(form: FlaskForm) -> tuple[str | None, str | None]:
    """The organisation the chosen role belongs to, from the one select that fits the role.

    The form always carries both selects (the page's script only hides the one that does not
    fit), so an exporter chosen before switching the role to after-sales is still submitted;
    it is ignored here rather than refused as "a manufacturer and an exporter"."""
    manufacturer = getattr(form, "manufacturer", None)
    exporter = getattr(form, "exporter", None)
    manufacturer_code = (manufacturer.data or None) if manufacturer else None
    exporter_code = (exporter.data or None) if exporter else None
    try:
        role = Role(form.role.data or "")
    except ValueError:
        return manufacturer_code, exporter_code  # the service names the unknown role
    if role.is_manufacturer_staff:
        return manufacturer_code, None
    if role is Role.EXPORTER:
        return None, exporter_code
    return None, None  # reviewers and platform administrators belong to no organisation


@admin.get("/users")
@requires(*ADMINS)
def users():  # type: ignore[no-untyped-def]
    return render_template("ui/admin/users.html", users=accounts.list_users(db_session(), current_user()))


@admin.route("/users/new", methods=["GET", "POST"])
@requires(*ADMINS)
def user_new():  # type: ignore[no-untyped-def]
    actor = current_user()
    form = UserForm()
    _organisation_choices(form, actor)

    def create() -> User:
        manufacturer_code, exporter_code = _organisation_codes(form)
        return accounts.create_user_as(
            session=db_session(),
            actor=actor,
            email=form.email.data or "",
            role=form.role.data or "",
            password=form.password.data or "",
            manufacturer_code=manufacturer_code,
            exporter_code=exporter_code,
        )

    user, status = _create(form, create)
    if user is not None:
        flash(_("User %(email)s created.", email=user.email), "success")
        return redirect(url_for("admin.users"))
    return render_template(
        "ui/admin/user_new.html", form=form, actor=actor, min_password=accounts.MIN_PASSWORD_CHARS
    ), status


def _refused(user_id: int, error: IssuerError, form_name: str, form: FlaskForm) -> tuple[str, int]:
    """The user's page again after a service refused one of its forms, the error beside that form
    (the user is read again: the rolled-back change must not show)."""
    session = db_session()
    session.rollback()
    status = _show_error(form, error)
    return _render_user_edit(accounts.get_user(session, current_user(), user_id), status=status, **{form_name: form})


def _render_user_edit(
    user: User,
    *,
    role_form: UserRoleForm | None = None,
    password_form: PasswordResetForm | None = None,
    active_form: ActiveForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    actor = current_user()
    if role_form is None:
        role_form = UserRoleForm(
            formdata=None,
            data={
                "role": user.role,
                "manufacturer": user.manufacturer.code if user.manufacturer else "",
                "exporter": user.exporter.code if user.exporter else "",
            },
        )
        _organisation_choices(role_form, actor)
    page = render_template(
        "ui/admin/user_edit.html",
        user=user,
        actor=actor,
        role_form=role_form,
        password_form=password_form or PasswordResetForm(formdata=None),
        active_form=active_form or ActiveForm(formdata=None),
        min_password=accounts.MIN_PASSWORD_CHARS,
        **history_context(db_session(), actor, object_type="user", object_id=user.id),
    )
    return page, status


@admin.route("/users/<int:user_id>", methods=["GET", "POST"])
@requires(*ADMINS)
def user_edit(user_id: int):  # type: ignore[no-untyped-def]
    session = db_session()
    actor = current_user()
    user = accounts.get_user(session, actor, user_id)
    if request.method != "POST":  # GET, and HEAD, which must answer as GET does
        return _render_user_edit(user)
    form = UserRoleForm()
    _organisation_choices(form, actor)
    if not form.validate_on_submit():
        return _render_user_edit(user, role_form=form, status=422)
    manufacturer_code, exporter_code = _organisation_codes(form)
    try:
        accounts.update_user(
            session=session,
            actor=actor,
            user_id=user.id,
            role=form.role.data or "",
            manufacturer_code=manufacturer_code,
            exporter_code=exporter_code,
        )
    except IssuerError as error:
        return _refused(user_id, error, "role_form", form)
    flash(_("User %(email)s saved.", email=user.email), "success")
    return redirect(url_for("admin.user_edit", user_id=user.id))


@admin.post("/users/<int:user_id>/<any(deactivate, reactivate):change>")
@requires(*ADMINS)
def user_active(user_id: int, change: str):  # type: ignore[no-untyped-def]
    session = db_session()
    actor = current_user()
    user = accounts.get_user(session, actor, user_id)
    form = ActiveForm()
    if not form.validate_on_submit():
        return _render_user_edit(user, active_form=form, status=422)
    try:
        accounts.set_active(session=session, actor=actor, user_id=user.id, active=change == "reactivate")
    except IssuerError as error:
        return _refused(user_id, error, "active_form", form)
    if change == "reactivate":
        flash(_("User %(email)s can sign in again.", email=user.email), "success")
    else:
        flash(_("User %(email)s is deactivated: no sign-in, no API tokens.", email=user.email), "success")
    return redirect(url_for("admin.user_edit", user_id=user.id))


@admin.post("/users/<int:user_id>/password")
@requires(*ADMINS)
def user_password(user_id: int):  # type: ignore[no-untyped-def]
    session = db_session()
    actor = current_user()
    user = accounts.get_user(session, actor, user_id)
    form = PasswordResetForm()
    if not form.validate_on_submit():
        return _render_user_edit(user, password_form=form, status=422)
    if user.id == actor.id:  # the service refuses it too; here the refusal is in the page's language
        form.password.errors = [
            _(
                "You cannot reset your own password here; change it on your account page, which asks for your"
                " current password."
            )
        ]
        return _render_user_edit(user, password_form=form, status=422)
    try:
        change = accounts.set_password(session=session, actor=actor, user_id=user.id, password=form.password.data or "")
    except IssuerError as error:
        return _refused(user_id, error, "password_form", form)
    flash(_("A new password is set for %(email)s. Tell them over a safe channel.", email=user.email), "success")
    if change.revoked_tokens:
        flash(
            ngettext(
                "Their %(num)d API token is revoked; they create a new one after signing in.",
                "Their %(num)d API tokens are revoked; they create new ones after signing in.",
                change.revoked_tokens,
            ),
            "success",
        )
    else:
        flash(_("They had no API token to revoke."), "success")
    return redirect(url_for("admin.user_edit", user_id=user.id))


# -- seal keys ---------------------------------------------------------------------------------


class KeyActionForm(FlaskForm):
    """Generating or rotating a key carries nothing but the CSRF token."""


class KeyImportForm(FlaskForm):
    key = FileField(_l("Private key (PEM)"), validators=[FileRequired(_l("Choose the private key file."))])
    certificate = FileField(
        _l("Certificate and chain (PEM)"), validators=[FileRequired(_l("Choose the certificate file."))]
    )
    key_password = PasswordField(_l("Password of the private key file, if it has one"), validators=[Optional()])


class SealImageForm(FlaskForm):
    image = FileField(_l("Seal image (PNG)"), validators=[FileRequired(_l("Choose a PNG file."))])


def _key_settings() -> tuple[Any, str]:
    """Where private keys live and the passphrase that encrypts them: the app's settings, as
    the CLI uses them. Never shown, never logged."""
    issuance = current_app.extensions["issuer.issuance"]
    return issuance.keys_dir, issuance.passphrase


@admin.get("/keys")
@requires(*ADMINS)
def keys():  # type: ignore[no-untyped-def]
    """A manufacturer administrator goes straight to its keys; a platform administrator chooses."""
    actor = current_user()
    chosen = request.args.get("manufacturer", "").strip()
    if actor.user_role is Role.MANUFACTURER_ADMIN and actor.manufacturer is not None:
        return redirect(url_for("admin.keys_of", code=actor.manufacturer.code))
    if chosen:
        return redirect(url_for("admin.keys_of", code=organisations.manufacturer_for(db_session(), actor, chosen).code))
    session = db_session()
    return render_template(
        "ui/admin/keys_choose.html",
        manufacturers=organisations.list_manufacturers(session),
        signing_keys=seal_keys.signing_keys(session),
    )


def _certificate_facts(key: Any) -> dict[str, str]:
    certificate = seal_keys.certificate_of(key)
    return {"subject": certificate.subject.rfc4514_string(), "issuer": certificate.issuer.rfc4514_string()}


def _render_keys(
    manufacturer: Manufacturer,
    *,
    import_form: KeyImportForm | None = None,
    image_form: SealImageForm | None = None,
    action_form: KeyActionForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    session = db_session()
    all_keys = seal_keys.keys_of(session, manufacturer)
    current = seal_keys.current_key(session, manufacturer)
    page = render_template(
        "ui/admin/keys.html",
        manufacturer=manufacturer,
        current=current,
        retired=[k for k in all_keys if current is None or k.id != current.id],
        facts={k.id: _certificate_facts(k) for k in all_keys},
        has_seal_image=organisations.has_seal_image(session, manufacturer),
        action_form=action_form or KeyActionForm(formdata=None),
        import_form=import_form or KeyImportForm(formdata=None),
        image_form=image_form or SealImageForm(formdata=None),
        platform_admin=current_user().user_role is Role.PLATFORM_ADMIN,
    )
    return page, status


def _keys_refused(code: str, error: IssuerError, form_name: str, form: FlaskForm) -> tuple[str, int]:
    """The keys page again after a service refused one of its forms, the error beside that form
    (the manufacturer is read again: the rolled-back change must not show)."""
    session = db_session()
    session.rollback()
    status = _show_error(form, error)
    return _render_keys(
        organisations.manufacturer_for(session, current_user(), code), status=status, **{form_name: form}
    )


@admin.get("/keys/<code>")
@requires(*ADMINS)
def keys_of(code: str):  # type: ignore[no-untyped-def]
    return _render_keys(organisations.manufacturer_for(db_session(), current_user(), code))


@admin.post("/keys/<code>/<any(generate, rotate):change>")
@requires(*ADMINS)
def key_change(code: str, change: str):  # type: ignore[no-untyped-def]
    session = db_session()
    manufacturer = organisations.manufacturer_for(session, current_user(), code)
    form = KeyActionForm()
    if not form.validate_on_submit():
        return _render_keys(manufacturer, action_form=form, status=422)
    keys_dir, passphrase = _key_settings()
    make = seal_keys.generate_key if change == "generate" else seal_keys.rotate_key
    try:
        key = make(session=session, manufacturer_code=manufacturer.code, keys_dir=keys_dir, passphrase=passphrase)
    except IssuerError as error:
        return _keys_refused(code, error, "action_form", form)
    if change == "generate":
        flash(_("Seal key %(kid)s created; it seals new letters from now on.", kid=key.kid), "success")
    else:
        flash(
            _("Seal key %(kid)s now seals new letters; letters sealed before keep verifying.", kid=key.kid), "success"
        )
    return redirect(url_for("admin.keys_of", code=manufacturer.code))


@admin.post("/keys/<code>/import")
@requires(*ADMINS)
def key_import(code: str):  # type: ignore[no-untyped-def]
    session = db_session()
    manufacturer = organisations.manufacturer_for(session, current_user(), code)
    form = KeyImportForm()
    if not form.validate_on_submit():
        return _render_keys(manufacturer, import_form=form, status=422)
    keys_dir, passphrase = _key_settings()
    key_password = form.key_password.data or ""
    try:
        key = seal_keys.import_key(
            session=session,
            manufacturer_code=manufacturer.code,
            key_pem=form.key.data.read(),
            certificates_pem=form.certificate.data.read(),
            key_password=key_password.encode("utf-8") if key_password else None,
            keys_dir=keys_dir,
            passphrase=passphrase,
        )
    except IssuerError as error:
        return _keys_refused(code, error, "import_form", form)
    flash(_("The CA-issued key %(kid)s now seals new letters.", kid=key.kid), "success")
    return redirect(url_for("admin.keys_of", code=manufacturer.code))


@admin.post("/keys/<code>/seal-image")
@requires(*ADMINS)
def seal_image_upload(code: str):  # type: ignore[no-untyped-def]
    session = db_session()
    manufacturer = organisations.manufacturer_for(session, current_user(), code)
    form = SealImageForm()
    if not form.validate_on_submit():
        return _render_keys(manufacturer, image_form=form, status=422)
    try:
        organisations.set_seal_image(session=session, manufacturer_code=manufacturer.code, image=form.image.data.read())
    except IssuerError as error:
        return _keys_refused(code, error, "image_form", form)
    flash(_("The seal image is saved; it is printed on letters issued from now on."), "success")
    return redirect(url_for("admin.keys_of", code=manufacturer.code))


@admin.get("/keys/<code>/seal.png")
@requires(*ADMINS)
def seal_image(code: str):  # type: ignore[no-untyped-def]
    """The stored seal image, to its own manufacturer's administrators and platform administrators."""
    manufacturer = organisations.manufacturer_for(db_session(), current_user(), code)
    image = manufacturer.seal_image
    if not image:
        raise NotFound(f"{manufacturer.code} has no seal image")
    response = Response(image, mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
