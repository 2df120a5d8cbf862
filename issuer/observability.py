"""Logs a machine can read: one JSON object per line, each carrying the request id.

Every request gets an id — the caller's ``X-Request-ID`` when it is a sane token (a proxy or a
client that already traces), else a new random one — answered back in ``X-Request-ID`` and
written on every log line made while serving it, and on the access line written when it ends
(method, path, status, duration, client, user). A decision that queues a letter hands its
request id to the job, so the worker's lines for that letter carry it too.

Logging is configured by the processes that serve (``wsgi.py`` under gunicorn, ``issuer
worker``), never by ``create_app``: tests and the CLI keep Python's defaults.
``ISSUER_LOG_FORMAT`` picks ``json`` (the default in production) or ``text``;
``ISSUER_LOG_LEVEL`` the level (``INFO``).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Outside a request (a worker's job), the id of what the process is doing.
current_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "issuer_log_context", default=None
)
access_log = logging.getLogger("issuer.access")

# LogRecord's own attributes; anything else on a record came through ``extra=``.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def request_id() -> str | None:
    if has_request_context():
        return getattr(g, "request_id", None)
    context = current_context.get()
    return context.get("request_id") if context else None


def _incoming_id() -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex


def init_request_ids(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        g.request_id = _incoming_id()
        g.request_started = time.perf_counter()

    @app.after_request
    def answer_request_id(response: Response) -> Response:
        rid = getattr(g, "request_id", None)
        if rid:
            response.headers[REQUEST_ID_HEADER] = rid
            started = getattr(g, "request_started", None)
            user = getattr(g.get("user"), "id", None)  # the id, not the e-mail: logs travel
            access_log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
                    "remote_addr": request.remote_addr,
                    "user": user,
                    "bytes": response.calculate_content_length(),
                },
            )
        return response


class ContextFilter(logging.Filter):
    """Adds the request id (and a worker's job id) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id()
        context = current_context.get()
        if context:
            for key, value in context.items():
                if not getattr(record, key, None):
                    setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and value is not None and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


def configure_logging(*, log_format: str = "json", level: str = "INFO") -> None:
    """Send every logger's records to stderr, one line each, with the request id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The app writes its own access lines (with the request id); werkzeug's would repeat them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
