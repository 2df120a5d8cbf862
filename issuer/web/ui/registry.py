"""Pages under /registry."""

from __future__ import annotations

from flask import Blueprint

registry = Blueprint("registry", __name__, url_prefix="/registry")
