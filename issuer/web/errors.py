"""Errors mapped to HTTP once: JSON for the API, plain pages elsewhere; never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_limiter import RateLimitExceeded
from flask_login import current_user as session_user
from flask_wtf.csrf import CSRFError
from marshmallow.error_store import SCHEMA
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from issuer.errors import IssuerError, Unauthenticated, ValidationFailed
from issuer.web.security import retry_after

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED",
    429: "RATE_LIMITED",
}


def field_errors(messages: Any, path: str = "") -> list[dict[str, str]]:
    """Flatten nested field errors ({"vehicles": {0: {"vin": [...]}}}) into the one shape every
    422 carries: ``[{"field": "vehicles[0].vin", "message": ...}]``."""
    if isinstance(messages, Mapping):
        out = []
        for key, value in messages.items():
            if key == SCHEMA:  # an error of the object itself (e.g. "Invalid input type"), not of a field
                out.extend(field_errors(value, path))
                continue
            part = f"[{key}]" if isinstance(key, int) or str(key).isdigit() else (f".{key}" if path else str(key))
            out.extend(field_errors(value, f"{path}{part}"))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [{"field": path or "(body)", "message": " ".join(messages)}]
    if isinstance(messages, list):
        return [item for m in messages for item in field_errors(m, path)]
    return [{"field": path or "(body)", "message": str(messages)}]


def error_response(status: int, code: str, message: str, details: object = None) -> tuple[Response, int]:
    body = {"error": {"code": code, "message": message, "details": details if details is not None else {}}}
    response = jsonify(body)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="issuer"'
    return response, status


def _wants_json() -> bool:
    return (
        request.path.startswith("/api/")
        or request.path.startswith("/.well-known/")
        or request.accept_mimetypes.best == "application/json"
    )


def _return_path() -> str:
    """Where to return after signing in: the page asked for, or, when a form was sent after the
    session ended (a POST cannot be repeated by a redirect), the page the form was on."""
    if request.method in ("GET", "HEAD"):
        return request.full_path.rstrip("?")
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host and referrer.path.startswith("/"):
        return referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return "/"


def error_page(status: int, message: str, headers: Any = None) -> tuple[str, int, Any]:
    """An HTML error page in the site's layout; a plain one if even that cannot be rendered."""
    keep = [(k, v) for k, v in (headers or []) if k.lower() not in ("content-type", "content-length")]
    try:
        return render_template("ui/error.html", status=status, message=message), status, keep
    except Exception:  # the page of last resort must not fail itself
        log.exception("the error page could not be rendered")
        return message, status, [*keep, ("Content-Type", "text/plain; charset=utf-8")]


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(IssuerError)
    def issuer_error(error: IssuerError):  # type: ignore[no-untyped-def]
        if _wants_json():
            details = error.details
            if isinstance(error, ValidationFailed) and isinstance(details, Mapping):
                # Services name bad fields as {field: [messages]}; answer them in the schemas' shape.
                details = field_errors(details)
            return error_response(error.http_status, error.code, error.message, details)
        if isinstance(error, Unauthenticated):
            return redirect(url_for("pages.login", next=_return_path()))
        return error_page(error.http_status, error.message)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):  # type: ignore[no-untyped-def]
        # A form sent after the session ended carries a token of the old session: sign in again
        # and come back to the form's page, rather than a bare 400.
        if not session_user.is_authenticated and request.endpoint != "pages.login":
            return redirect(url_for("pages.login", next=_return_path()))
        return error_page(400, gettext("This form has expired. Reload the page and send it again."))

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error: RateLimitExceeded):  # type: ignore[no-untyped-def]
        seconds = retry_after(error)
        if _wants_json():
            message = f"too many requests ({error.description}); try again in {seconds} seconds"
            response, status = error_response(429, HTTP_CODES[429], message, {"retry_after": seconds})
        else:
            message = gettext("Too many attempts. Try again in %(seconds)s seconds.", seconds=seconds)
            response, status = app.make_response(error_page(429, message)), 429
        response.headers["Retry-After"] = str(seconds)
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):  # type: ignore[no-untyped-def]
        status = error.code or 500
        if _wants_json():
            message = error.description or error.name
            if status == 413:
                limit = app.config.get("MAX_CONTENT_LENGTH") or 0
                message = f"the request body is larger than {limit // (1024 * 1024)} MB"
            response, status = error_response(status, HTTP_CODES.get(status, "HTTP_ERROR"), message)
            # Keep the headers the status needs, e.g. 405's Allow (the JSON replaces only the body).
            for name, value in error.get_headers():
                if name.lower() not in ("content-type", "content-length"):
                    response.headers[name] = value
            return response, status
        if status >= 400:
            return error_page(status, error.description or error.name, headers=error.get_headers())
        return error

    @app.errorhandler(OperationalError)
    def database_busy(error: OperationalError):  # type: ignore[no-untyped-def]
        # SQLite allows one writer; a write that waited out the busy timeout is worth a retry,
        # not a 500. Any other operational error is unexpected.
        if "database is locked" not in str(error.orig):
            return unexpected(error)
        log.warning("database busy on %s %s", request.method, request.path)
        message = "the database is busy with another change; nothing was changed, try again"
        if _wants_json():
            response, status = error_response(503, "BUSY", message)
        else:
            response, status = app.make_response(error_page(503, message)), 503
        response.headers["Retry-After"] = "2"
        return response, status

    @app.errorhandler(Exception)
    def unexpected(error: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return error_response(500, "INTERNAL_ERROR", "an internal error occurred; it has been logged")
        return error_page(500, "An internal error occurred; it has been logged.")
