"""Pages under /admin/outbox."""

from __future__ import annotations

from flask import Blueprint

outbox = Blueprint("outbox", __name__, url_prefix="/admin/outbox")
