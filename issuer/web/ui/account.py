"""Pages under /account."""

from __future__ import annotations

from flask import Blueprint

account = Blueprint("account", __name__, url_prefix="/account")
