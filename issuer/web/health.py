"""Liveness and readiness, for load balancers and orchestrators (no account, no rate limit).

- ``GET /healthz``: the process answers. Touches nothing else, so a slow database never makes
  a supervisor restart healthy web workers.
- ``GET /readyz``: this instance can serve: the database answers and its schema is at this
  code's revision, the seal keys directory is readable, and the job queue (when configured)
  answers. ``200`` when all pass, else ``503``; each check is named with ``ok`` or ``failed``
  and no more (the details are in the server's log, not for the public).
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

health = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@health.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify({"status": "ok"})


@cache
def _head_revision() -> str | None:
    """The schema revision this code expects (read once: the migrations do not change)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from issuer.migrate import PROJECT_ROOT

    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


def _database() -> bool:
    from alembic.runtime.migration import MigrationContext

    engine = current_app.extensions["issuer.db"].engine
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        current = MigrationContext.configure(connection).get_current_revision()
    head = _head_revision()
    if current != head:
        log.warning("readiness: database at revision %s, code expects %s (run issuer db upgrade)", current, head)
        return False
    return True


def _keys() -> bool:
    keys_dir = current_app.extensions["issuer.issuance"].keys_dir
    return os.path.isdir(keys_dir) and os.access(keys_dir, os.R_OK | os.X_OK)


def _queue() -> bool:
    return bool(current_app.extensions["issuer.queue"].ping())


@health.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    checks: dict[str, Any] = {"database": _database, "keys": _keys}
    if current_app.extensions.get("issuer.queue") is not None:
        checks["queue"] = _queue
    results = {}
    for name, check in checks.items():
        try:
            results[name] = "ok" if check() else "failed"
        except Exception:  # a readiness probe reports, it never fails itself
            log.exception("readiness check %s failed", name)
            results[name] = "failed"
    ready = all(result == "ok" for result in results.values())
    response = jsonify({"status": "ready" if ready else "not ready", "checks": results})
    response.status_code = 200 if ready else 503
    response.cache_control.no_store = True
    return response
