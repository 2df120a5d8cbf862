"""Security headers on every response, cookies, the production refusal and no stack trace.

- Headers: one request of every kind the app answers (pages signed in and not, redirects,
  JSON answers, API errors 401/404/405/429/500, HTML errors 404/429/500, static files, the
  published keys, an upload result) carries the strict Content-Security-Policy (compared
  directive by directive), frame denial, nosniff, the referrer, opener and permissions
  policies, and ``Cache-Control: no-store`` unless it is public by nature; HSTS only in
  production.
- Cookies: the session cookie is HttpOnly and SameSite=Lax everywhere, and in production a
  ``__Host-`` cookie that is Secure; the language choice lives in it (there is no other cookie).
  Signing in over HTTPS in production shows why the referrer policy is ``same-origin``: the
  CSRF check needs the page's own Referer.
- Production refuses to start with the development or a short SECRET_KEY, without (or with the
  development) ISSUER_KEY_PASSPHRASE, or in debug mode: through Settings.from_environment and
  create_app, and through real processes (``python -c 'import wsgi'``, ``flask --app wsgi run``,
  ``gunicorn wsgi:app``) that exit non-zero with the one-line reason and no traceback.
- No stack trace: a deliberately failing view, and a database that goes away under a running
  app (SQLite and PostgreSQL, a signed-in user), answer a generic 500 — JSON under /api/, a
  page otherwise — holding no exception text, no traceback, no SQL and no file path.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from issuer import create_app
from issuer.config import DEVELOPMENT_KEY_PASSPHRASE, DEVELOPMENT_SECRET_KEY, ConfigurationError, Settings
from issuer.db import Database, make_engine
from issuer.migrate import upgrade
from issuer.services import accounts
from tests import factories
from tests.conftest import _create_postgres_database, _drop_postgres_database

ROOT = Path(__file__).resolve().parents[2]
HTTPS = {"base_url": "https://issuer.test"}  # a request as it reaches production, over TLS
PRODUCTION_SECRET = "p" * 48
EXPECTED_POLICY = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "font-src": "'self'",
    "connect-src": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "object-src": "'none'",
}
# What an exception may carry, none of which a client may see.
SECRET_DETAIL = "kaboom-detail-7f3a"
LEAKS = ("Traceback", 'File "', ".py", SECRET_DETAIL, "RuntimeError", "/etc/issuer", "site-packages")
DATABASE_LEAKS = ("SELECT", "sqlalchemy", "sqlite", "psycopg", "OperationalError", "issuer_test_", "FROM ")


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def production(settings: Settings) -> Settings:
    return dataclasses.replace(settings, production=True, secret_key=PRODUCTION_SECRET, ratelimit_enabled=True)


def with_failing_views(app: Flask) -> Flask:
    """A page and an API call that fail the way a bug would, with details in the exception."""

    def fail() -> None:
        raise RuntimeError(f"{SECRET_DETAIL} reading /etc/issuer/secret.conf")

    app.add_url_rule("/broken", "broken_page", fail)
    app.add_url_rule("/api/v1/broken", "broken_api", fail)
    return app


@pytest.fixture
def app(settings: Settings, bound_database: Any) -> Flask:
    # As deployed: not in testing mode (exceptions are not propagated), rate limits on.
    limited = dataclasses.replace(settings, ratelimit_enabled=True)
    return with_failing_views(create_app(limited, database=bound_database))


def policy(response: Any) -> dict[str, str]:
    directives = [d.strip() for d in response.headers["Content-Security-Policy"].split(";") if d.strip()]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] for d in directives}


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client: FlaskClient, email: str, **kwargs: Any) -> Any:
    token = csrf_token(client.get("/login", **kwargs).get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": factories.PASSWORD, "csrf_token": token}, **kwargs)


def every_kind_of_response(app: Flask, session: Session) -> dict[str, Any]:
    """One answer of each kind, named; each is checked for its status so the set is what it says."""
    exporter = factories.user(session, "exporter", exporter=factories.exporter(session))
    token = {"Authorization": f"Bearer {factories.token(session, exporter)}"}
    visitor = app.test_client()
    user = app.test_client()
    assert sign_in(user, exporter.email).status_code == 302
    answers = {
        "login page": (visitor.get("/login"), 200),
        "redirect": (visitor.get("/"), 302),
        "page not found": (visitor.get("/no-such-page"), 404),
        "page of a signed-in user": (user.get("/account"), 200),
        "page failing": (visitor.get("/broken"), 500),
        "verify form": (visitor.get("/verify"), 200),
        "verify upload result": (
            visitor.post("/verify", data={"file": (io.BytesIO(b"%PDF-1.7 not a letter"), "l.pdf")}),
            200,
        ),
        "api answer": (visitor.get("/api/v1/requests", headers=token), 200),
        "api without token": (visitor.get("/api/v1/requests"), 401),
        "api not found": (visitor.get("/api/v1/no-such-thing", headers=token), 404),
        "api method not allowed": (visitor.delete("/api/v1/precheck", headers=token), 405),
        "api failing": (visitor.get("/api/v1/broken"), 500),
        "openapi": (visitor.get("/api/v1/openapi.json"), 200),
        "published keys": (visitor.get("/.well-known/letter-keys.json"), 200),
        "stylesheet": (visitor.get("/static/css/app.css"), 200),
        "script": (visitor.get("/static/js/app.js"), 200),
    }
    limited = app.test_client()
    for _ in range(30):
        limited.get("/verify/X-2026-000001?code=A")
    answers["api rate limited"] = (limited.get("/api/v1/verify/X-2026-000001?code=A"), 429)
    answers["page rate limited"] = (limited.get("/verify/X-2026-000001?code=A"), 429)
    for name, (response, status) in answers.items():
        assert response.status_code == status, name
        response.get_data()
        response.close()  # static files are streamed from an open file
    return {name: response for name, (response, _) in answers.items()}


# -- headers -------------------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(app: Flask, session: Session) -> None:
    answers = every_kind_of_response(app, session)
    for name, response in answers.items():
        assert policy(response) == EXPECTED_POLICY, name
        assert response.headers["X-Frame-Options"] == "DENY", name
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Referrer-Policy"] == "same-origin", name
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin", name
        features = dict(f.strip().split("=") for f in response.headers["Permissions-Policy"].split(","))
        assert {"camera", "microphone", "geolocation", "payment"} <= set(features), name
        assert set(features.values()) == {"()"}, name
        assert "Strict-Transport-Security" not in response.headers, f"{name}: HSTS outside production"


def test_nothing_private_is_stored_by_a_cache(app: Flask, session: Session) -> None:
    public = {"stylesheet", "script", "published keys"}
    for name, response in every_kind_of_response(app, session).items():
        cache = response.cache_control
        if name in public:
            assert not cache.no_store, name
        else:
            assert cache.no_store, f"{name}: {response.headers.get('Cache-Control')}"
            assert not cache.public, name


def test_errors_under_the_api_are_json_and_pages_errors_are_html(app: Flask, session: Session) -> None:
    answers = every_kind_of_response(app, session)
    for name in ("api without token", "api not found", "api method not allowed", "api failing", "api rate limited"):
        assert answers[name].mimetype == "application/json", name
        assert set(answers[name].get_json()["error"]) == {"code", "message", "details"}, name
    assert answers["api method not allowed"].headers["Allow"]
    for name in ("page not found", "page failing", "page rate limited"):
        assert answers[name].mimetype == "text/html", name


def test_static_files_are_served_with_the_types_nosniff_requires(app: Flask) -> None:
    client = app.test_client()
    for path in ("/static/js/app.js", "/static/js/account.js", "/static/js/admin.js", "/static/js/registry.js"):
        with client.get(path) as script:
            assert script.mimetype == "text/javascript", path
    with client.get("/static/css/app.css") as stylesheet:
        assert stylesheet.mimetype == "text/css"


def test_production_adds_strict_transport_security(settings: Settings, bound_database: Any) -> None:
    app = create_app(production(settings), database=bound_database)
    client = app.test_client()
    for path in ("/login", "/api/v1/requests", "/static/css/app.css", "/no-such-page"):
        with client.get(path, **HTTPS) as response:
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains", path


# -- cookies -------------------------------------------------------------------------------------


def cookie_attributes(response: Any, name: str) -> dict[str, str]:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{name}=") and "Max-Age=0" not in c]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    parts = [p.strip() for p in cookies[0].split(";")[1:]]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts}


def test_the_session_cookie_is_http_only_and_same_site_lax(app: Flask) -> None:
    attributes = cookie_attributes(app.test_client().get("/login"), "session")
    assert "httponly" in attributes
    assert attributes["samesite"] == "Lax"
    assert "secure" not in attributes  # development serves plain HTTP


def test_production_signs_in_over_https_with_a_secure_host_only_cookie(
    settings: Settings, bound_database: Any, session: Session
) -> None:
    app = create_app(production(settings), database=bound_database)
    user = factories.user(session, "exporter", exporter=factories.exporter(session))
    client = app.test_client()
    first = client.get("/login", **HTTPS)
    attributes = cookie_attributes(first, "__Host-session")
    assert {"secure", "httponly"} <= set(attributes)
    assert attributes["samesite"] == "Lax"
    assert attributes["path"] == "/"
    assert "domain" not in attributes
    form = {"email": user.email, "password": factories.PASSWORD, "csrf_token": csrf_token(first.get_data(as_text=True))}

    # Over HTTPS the CSRF check wants a Referer of this site: a no-referrer policy would refuse
    # every form. same-origin sends it to this site (and to no other).
    assert client.post("/login", data=form, **HTTPS).status_code == 400
    signed_in = client.post("/login", data=form, headers={"Referer": "https://issuer.test/login"}, **HTTPS)

    assert signed_in.status_code == 302
    assert {"secure", "httponly"} <= set(cookie_attributes(signed_in, "__Host-session"))


def test_the_language_choice_needs_no_cookie_of_its_own(app: Flask) -> None:
    client = app.test_client()
    token = csrf_token(client.get("/login").get_data(as_text=True))
    answer = client.post("/language", data={"language": "en", "next": "/login", "csrf_token": token})
    assert answer.status_code == 302
    # (Flask-Login also sends an empty, expired remember_token: a deletion, not a cookie.)
    set_cookies = [c.split("=", 1)[0] for c in answer.headers.getlist("Set-Cookie") if "Max-Age=0" not in c]
    assert set_cookies == ["session"]
    assert "httponly" in cookie_attributes(answer, "session")
    assert 'lang="en"' in client.get("/login").get_data(as_text=True)


# -- production refuses development secrets ------------------------------------------------------


def production_environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "ISSUER_ENV": "production",
        "SECRET_KEY": PRODUCTION_SECRET,
        "ISSUER_KEY_PASSPHRASE": "a passphrase of the deployment",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'issuer.db'}",
        "ISSUER_KEYS_DIR": str(tmp_path / "keys"),
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v}


REFUSALS = {
    "no SECRET_KEY": ({"SECRET_KEY": ""}, "SECRET_KEY"),
    "the development SECRET_KEY": ({"SECRET_KEY": DEVELOPMENT_SECRET_KEY}, "SECRET_KEY"),
    "a short SECRET_KEY": ({"SECRET_KEY": "s" * 31}, "SECRET_KEY"),
    "no ISSUER_KEY_PASSPHRASE": ({"ISSUER_KEY_PASSPHRASE": ""}, "ISSUER_KEY_PASSPHRASE"),
    "the development passphrase": ({"ISSUER_KEY_PASSPHRASE": DEVELOPMENT_KEY_PASSPHRASE}, "ISSUER_KEY_PASSPHRASE"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_production_settings_refuse_development_secrets(tmp_path: Path, case: str) -> None:
    overrides, named = REFUSALS[case]
    environment = production_environment(tmp_path, **overrides)
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_environment(environment)
    settings = Settings.from_environment({**environment, "ISSUER_ENV": "development"})
    with pytest.raises(ConfigurationError, match=named):
        create_app(dataclasses.replace(settings, production=True))  # however the settings were made


def test_production_never_runs_in_debug_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")
    with pytest.raises(ConfigurationError, match="debug"):
        create_app(Settings.from_environment(production_environment(tmp_path)))


def test_a_production_app_is_neither_debugging_nor_propagating_exceptions(tmp_path: Path) -> None:
    app = create_app(Settings.from_environment(production_environment(tmp_path)))
    try:
        assert not app.debug
        assert not app.testing
        assert app.config["PROPAGATE_EXCEPTIONS"] is not True  # None: only in testing or debug mode
        assert app.config["SESSION_COOKIE_SECURE"] is True
    finally:
        app.extensions["issuer.db"].engine.dispose()


def run(args: list[str], environment: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ISSUER_", "FLASK_", "SECRET", "DATABASE"))}
    return subprocess.run(
        args, env={**clean, **environment}, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


VENV_BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("command", "case"),
    [
        ([sys.executable, "-c", "import wsgi"], "no SECRET_KEY"),
        ([str(VENV_BIN / "flask"), "--app", "wsgi", "run", "--port", "0"], "no ISSUER_KEY_PASSPHRASE"),
        ([str(VENV_BIN / "gunicorn"), "--bind", "127.0.0.1:0", "--workers", "1", "wsgi:app"], "a short SECRET_KEY"),
    ],
    ids=["python", "flask", "gunicorn"],
)
def test_the_server_process_refuses_to_start_and_says_why_in_one_line(
    tmp_path: Path, command: list[str], case: str
) -> None:
    overrides, named = REFUSALS[case]
    finished = run(command, production_environment(tmp_path, **overrides))

    assert finished.returncode != 0
    refusal = [line for line in finished.stderr.splitlines() if line.startswith("issuer: refusing to start:")]
    assert len(refusal) == 1, finished.stderr
    assert named in refusal[0]
    assert "Traceback" not in finished.stderr + finished.stdout


# -- no stack trace ------------------------------------------------------------------------------


def assert_generic_500(response: Any, *, json: bool) -> None:
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    for leak in (*LEAKS, *DATABASE_LEAKS):
        assert leak not in body, f"{leak!r} reached the client: {body[:500]}"
    if json:
        assert response.get_json() == {
            "error": {
                "code": "INTERNAL_ERROR",
                "message": "an internal error occurred; it has been logged",
                "details": {},
            }
        }
    else:
        assert response.mimetype in ("text/html", "text/plain")
        assert "An internal error occurred; it has been logged." in body
    assert response.headers["Content-Security-Policy"], "the error answer lost its headers"


def test_a_failing_view_answers_a_generic_500_without_a_trace(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="issuer"):
        assert_generic_500(client.get("/api/v1/broken"), json=True)
        assert_generic_500(client.get("/broken"), json=False)
        assert_generic_500(client.get("/broken", headers={"Accept": "application/json"}), json=True)
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 3, "the details belong in the log"
    assert all(SECRET_DETAIL in str(r.exc_info[1]) for r in logged)


@pytest.fixture
def own_database(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A migrated database of this test alone, of the backend of ``database_url``, and a way to
    take it away under the running app."""
    if database_url.startswith("sqlite"):
        folder = tmp_path / "db"
        folder.mkdir()
        url = f"sqlite:///{folder / 'issuer.db'}"

        def take_away(database: Database) -> None:
            database.engine.dispose()
            shutil.move(folder, tmp_path / "gone")  # the file's folder is gone: it cannot be reopened

        name = None
    else:
        name, url = _create_postgres_database()

        def take_away(database: Database) -> None:
            _drop_postgres_database(name)  # WITH (FORCE): the app's pooled connections are cut

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url, take_away
    finally:
        if name is not None:
            _drop_postgres_database(name)


def test_a_database_gone_under_a_running_app_answers_generic_500s(
    settings: Settings, own_database: tuple[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    url, take_away = own_database
    database = Database(url)
    try:
        app = create_app(dataclasses.replace(settings, database_url=url), database=database)
        with database.sessions() as session:
            user = factories.user(session, "exporter", exporter=factories.exporter(session))
            token = {"Authorization": f"Bearer {factories.token(session, user)}"}
            email = user.email
        browser = app.test_client()
        assert sign_in(browser, email).status_code == 302
        assert browser.get("/requests").status_code == 200
        take_away(database)

        with caplog.at_level(logging.ERROR, logger="issuer"):
            assert_generic_500(app.test_client().get("/api/v1/requests", headers=token), json=True)
            assert_generic_500(app.test_client().get("/api/v1/requests", headers=token), json=True)  # pool reconnects
            # The signed-in page fails, and so does its error page (it loads the user): the plain
            # page of last resort answers.
            assert_generic_500(browser.get("/requests"), json=False)
            assert_generic_500(app.test_client().get("/verify/X-2026-000001?code=A"), json=False)
            visitor = app.test_client()
            login_form = visitor.get("/login")
            assert login_form.status_code == 200  # the form needs no database
            form = {"email": email, "password": "x", "csrf_token": csrf_token(login_form.get_data(as_text=True))}
            assert_generic_500(visitor.post("/login", data=form), json=False)
        assert any(r.exc_info for r in caplog.records), "the database error was not logged"
    finally:
        database.engine.dispose()
