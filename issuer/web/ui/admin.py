"""Pages under /admin."""

from __future__ import annotations

from flask import Blueprint

admin = Blueprint("admin", __name__, url_prefix="/admin")
