"""Signing in and out of the web pages (session cookie, CSRF-protected forms)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import LoginManager, current_user, login_required, login_user, logout_user

from issuer.models import User
from issuer.services.accounts import authenticate
from issuer.web.session import db_session

pages = Blueprint("pages", __name__)
login_manager = LoginManager()
login_manager.login_view = "pages.login"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    user = db_session().get(User, int(user_id))
    return user if user is not None and user.active else None


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a login link must not bounce the user to another site."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("pages.home")


@pages.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    email = request.form.get("email", "").strip()
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        if not email or not password:
            error = "请输入电子邮箱和密码 · Enter your e-mail and password"
        else:
            user = authenticate(session=db_session(), email=email, password=password)
            if user is not None:
                login_user(user)
                return redirect(_safe_next(request.args.get("next")))
            error = "电子邮箱或密码不正确 · Wrong e-mail or password"
    status = 401 if error and request.method == "POST" and email else (400 if error else 200)
    return render_template("pages/login.html", email=email, error=error), status


@pages.post("/logout")
@login_required
def logout():  # type: ignore[no-untyped-def]
    logout_user()
    return redirect(url_for("pages.login"))


@pages.get("/")
def home():  # type: ignore[no-untyped-def]
    if not current_user.is_authenticated:
        return redirect(url_for("pages.login"))
    return render_template("pages/home.html", user=current_user)
