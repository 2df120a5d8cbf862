"""issuer: issues and verifies After-sales Maintenance Service Confirmation Letters."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from issuer.config import ConfigurationError, Settings
from issuer.db import Database


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    """Build the app: settings → extensions → blueprints → error handlers → CLI."""
    settings = settings or Settings.from_environment()
    settings.check()  # production refuses development secrets, however the settings were made
    root = Path(__file__).resolve().parent.parent
    app = Flask(
        __name__,
        instance_path=str(root / "instance"),
        template_folder=str(root / "templates"),
        static_folder="static",
    )
    if settings.production and app.debug:
        # The debugger runs code typed into a browser and shows source and tracebacks.
        raise ConfigurationError("production never runs in debug mode: unset FLASK_DEBUG")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        # __Host-: browsers take it only over HTTPS, for this host, for every path; no
        # sibling domain or plain-HTTP page can set or shadow it.
        SESSION_COOKIE_NAME="__Host-session" if settings.production else "session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.production,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=settings.max_content_length,
        JSON_SORT_KEYS=False,
        ISSUER_SETTINGS=settings,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    register_extensions(app, settings, database)
    register_blueprints(app)
    register_errors(app)
    register_cli(app)
    return app


def register_extensions(app: Flask, settings: Settings, database: Database | None) -> None:
    if database is None:
        url = settings.database_url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        database = Database(url)
    app.extensions["issuer.db"] = database
    from issuer.sealing.signer import PadesSealer
    from issuer.services.letters import Issuance
    from issuer.web.session import register_session_teardown

    # The sealing backend is a port: another Sealer (e.g. a GB/T 38540 SM2 e-seal) plugs in here.
    app.extensions["issuer.issuance"] = Issuance(
        keys_dir=settings.keys_dir,
        passphrase=settings.seal_passphrase,
        public_url=settings.public_url,
        sealer=PadesSealer(),
    )
    register_session_teardown(app)
    # The job queue, when Redis is configured; without it letters are sealed inline.
    from issuer.queue import IssuanceQueue

    app.extensions["issuer.queue"] = (
        IssuanceQueue(settings.redis_url, name=settings.queue_name) if settings.redis_url else None
    )
    from issuer.web.security import init_security

    init_security(app, settings)  # trusted proxies, rate limits, security headers
    from issuer.services.notifications import init_notifications

    init_notifications(app, settings)  # mail about changes, written with them, sent after commit
    from issuer.i18n import init_babel

    init_babel(app)

    from issuer.web.auth import register_audit_context

    register_audit_context(app)
    from issuer.observability import init_request_ids

    init_request_ids(app)


def register_blueprints(app: Flask) -> None:
    from issuer.web.api import AsciiIntegerConverter, api

    app.url_map.converters["int"] = AsciiIntegerConverter  # before any route is added
    from issuer.web.public import public

    app.register_blueprint(api)
    app.register_blueprint(public)
    from issuer.web.health import health

    app.register_blueprint(health)
    from flask_wtf.csrf import CSRFProtect

    from issuer.web.letters import letters_api
    from issuer.web.pages import login_manager, pages
    from issuer.web.verify import verify, verify_api

    app.register_blueprint(letters_api)
    app.register_blueprint(verify)
    app.register_blueprint(verify_api)
    app.register_blueprint(pages)
    login_manager.init_app(app)
    from issuer.web.ui import register_ui

    register_ui(app)
    # Forms are CSRF-protected; the JSON API authenticates with bearer tokens, never cookies.
    csrf = CSRFProtect(app)
    for blueprint in (api, letters_api, verify_api, public):
        csrf.exempt(blueprint)
    # Checking a letter changes nothing and needs no account, so its upload form needs no token.
    csrf.exempt("issuer.web.verify.verify_upload_page")
    from issuer.web.api import refuse_nul_in_form

    app.before_request(refuse_nul_in_form)  # last: the form limits are set, the CSRF check is done


def register_errors(app: Flask) -> None:
    from issuer.web.errors import register_error_handlers

    register_error_handlers(app)


def register_cli(app: Flask) -> None:
    from issuer.cli import register_commands

    register_commands(app)
