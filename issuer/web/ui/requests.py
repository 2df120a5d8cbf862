"""Pages under /requests."""

from __future__ import annotations

from flask import Blueprint

requests_ui = Blueprint("requests_ui", __name__, url_prefix="/requests")
