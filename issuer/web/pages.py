"""Signing in and out, choosing the language, and the start page."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from issuer.i18n import LANGUAGES
from issuer.models import User
from issuer.services import accounts
from issuer.web.security import FAILED_LOGIN, LOGIN, rate_limited
from issuer.web.session import db_session

pages = Blueprint("pages", __name__)
login_manager = LoginManager()
login_manager.login_view = "pages.login"
login_manager.login_message = _l("Sign in to see this page.")
login_manager.session_protection = "strong"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The session's user, while active and while the password is the one signed in with."""
    number, _, stamp = user_id.partition(".")
    if not number.isdigit():
        return None
    user = db_session().get(User, int(number))
    if user is None or not user.active or not hmac.compare_digest(stamp, user.session_stamp):
        return None
    return user


def safe_next(target: str | None) -> str:
    """Only same-site paths: a link must not bounce the user to another site."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target  # browsers read "/\\host" as "//host"
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("pages.home")


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(_l("Enter your e-mail address.")), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password."))])


@pages.route("/login", methods=["GET", "POST"])
@rate_limited(LOGIN, FAILED_LOGIN)
def login():  # type: ignore[no-untyped-def]
    form = LoginForm()
    status = 200
    if request.method == "POST":
        status = 400
        if form.validate_on_submit():
            user = accounts.authenticate(
                session=db_session(), email=form.email.data or "", password=form.password.data or ""
            )
            if user is not None:
                login_user(user)
                accounts.record_sign_in(session=db_session(), user=user)
                return redirect(safe_next(request.args.get("next")))
            status = 401
            form.form_errors.append(_("Wrong e-mail or password."))
    return render_template("pages/login.html", form=form), status


@pages.post("/logout")
@login_required
def logout():  # type: ignore[no-untyped-def]
    logout_user()
    return redirect(url_for("pages.login"))


@pages.post("/language")
def set_language():  # type: ignore[no-untyped-def]
    """Switch the language; a signed-in user's choice is saved with the account."""
    language = request.form.get("language", "")
    if language in LANGUAGES:
        session["locale"] = language
        if current_user.is_authenticated:
            accounts.set_locale(session=db_session(), user=current_user._get_current_object(), locale=language)
    return redirect(safe_next(request.form.get("next")))


@pages.get("/")
def home():  # type: ignore[no-untyped-def]
    """The start page is the first page of the user's menu."""
    if not current_user.is_authenticated:
        return redirect(url_for("pages.login"))
    from issuer.web.ui import navigation_for

    items = navigation_for(current_user.user_role)
    if items:
        return redirect(url_for(items[0].endpoint))
    return render_template("pages/home.html", user=current_user)
