"""Pages under /account: who I am, my language, my password, my API tokens.

Every signed-in role has this page. A user sees and revokes only their own tokens
(``accounts.list_tokens`` / ``revoke_token`` take the user; another user's token is a 404).
A new token is shown once, in the answer to the POST that created it — never in a flash
message, which would put it in the session cookie — and the answer is marked not to be cached.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, make_response, redirect, render_template, session, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from issuer.errors import IssuerError
from issuer.i18n import LANGUAGES
from issuer.models import Role
from issuer.services import accounts
from issuer.web.auth import current_user, requires
from issuer.web.session import db_session
from issuer.web.ui.forms import show_service_error

account = Blueprint("account", __name__, url_prefix="/account")

EVERY_ROLE = tuple(Role)


class LanguageForm(FlaskForm):
    locale = SelectField(
        _l("Language of the pages"), choices=[SelectChoice(code, name) for code, name in LANGUAGES.items()]
    )


class TokenForm(FlaskForm):
    name = StringField(_l("Name of the new token"), validators=[Optional(), Length(max=100)])


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired()])
    new_password = PasswordField(
        _l("New password"), validators=[DataRequired(), Length(min=accounts.MIN_PASSWORD_CHARS, max=200)]
    )
    # Checked unless the user unticks it: a password is mostly changed for fear it leaked, and a
    # token lives on past the sessions the change ends.
    revoke_tokens = BooleanField(_l("Also revoke my API tokens"), default=True)


class RevokeForm(FlaskForm):
    """Revoking carries nothing but the CSRF token; the URL names the token."""


def _render(
    *,
    language_form: LanguageForm | None = None,
    token_form: TokenForm | None = None,
    password_form: PasswordChangeForm | None = None,
    new_token: str | None = None,
    status: int = 200,
) -> Any:
    user = current_user()
    page = render_template(
        "ui/account/index.html",
        user=user,
        tokens=accounts.list_tokens(db_session(), user),
        language_form=language_form or LanguageForm(formdata=None, data={"locale": user.locale or str(get_locale())}),
        token_form=token_form or TokenForm(formdata=None),
        password_form=password_form or PasswordChangeForm(formdata=None),
        new_token=new_token,
        min_password=accounts.MIN_PASSWORD_CHARS,
    )
    return page, status


@account.get("")
@requires(*EVERY_ROLE)
def index():  # type: ignore[no-untyped-def]
    return _render()


@account.post("/language")
@requires(*EVERY_ROLE)
def language():  # type: ignore[no-untyped-def]
    form = LanguageForm()
    if not form.validate_on_submit():
        return _render(language_form=form, status=422)
    user = current_user()
    try:
        accounts.set_locale(session=db_session(), user=user, locale=form.locale.data or "")
    except IssuerError as error:
        db_session().rollback()
        show_service_error(form, error)
        return _render(language_form=form, status=error.http_status)
    session["locale"] = user.locale  # the language stays after signing out, too
    flash(_("Language saved."), "success")
    return redirect(url_for("account.index"))


@account.post("/tokens")
@requires(*EVERY_ROLE)
def token_create():  # type: ignore[no-untyped-def]
    form = TokenForm()
    if not form.validate_on_submit():
        return _render(token_form=form, status=422)
    user = current_user()
    try:
        token = accounts.create_token(session=db_session(), email=user.email, name=form.name.data or "")
    except IssuerError as error:
        db_session().rollback()
        show_service_error(form, error)
        return _render(token_form=form, status=error.http_status)
    page, status = _render(new_token=token)
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"  # the token must not stay in any cache
    return response


@account.post("/tokens/<int:token_id>/revoke")
@requires(*EVERY_ROLE)
def token_revoke(token_id: int):  # type: ignore[no-untyped-def]
    form = RevokeForm()
    if not form.validate_on_submit():
        return _render(status=422)
    token = accounts.revoke_token(session=db_session(), user=current_user(), token_id=token_id)
    flash(_("The token %(prefix)s… is revoked; calls with it are refused from now on.", prefix=token.prefix), "success")
    return redirect(url_for("account.index"))


@account.post("/password")
@requires(*EVERY_ROLE)
def password():  # type: ignore[no-untyped-def]
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return _render(password_form=form, status=422)
    try:
        change = accounts.change_password(
            session=db_session(),
            user=current_user(),
            current_password=form.current_password.data or "",
            new_password=form.new_password.data or "",
            revoke_tokens=bool(form.revoke_tokens.data),
        )
    except IssuerError as error:
        db_session().rollback()
        show_service_error(form, error)
        return _render(password_form=form, status=error.http_status)
    # Sessions are bound to the password (User.get_id): every other session has just ended;
    # this one is renewed with the new password.
    login_user(current_user())
    flash(_("Your password is changed."), "success")
    if change.revoked_tokens:
        flash(
            ngettext(
                "Your %(num)d API token is revoked; programs using it are refused from now on.",
                "Your %(num)d API tokens are revoked; programs using them are refused from now on.",
                change.revoked_tokens,
            ),
            "success",
        )
    return redirect(url_for("account.index"))
