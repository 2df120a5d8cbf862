"""Pages under /audit."""

from __future__ import annotations

from flask import Blueprint

audit_ui = Blueprint("audit_ui", __name__, url_prefix="/audit")
