"""Pages under /precheck."""

from __future__ import annotations

from flask import Blueprint

precheck = Blueprint("precheck", __name__, url_prefix="/precheck")
