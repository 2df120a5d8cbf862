"""Pages under /letters."""

from __future__ import annotations

from flask import Blueprint

letters_ui = Blueprint("letters_ui", __name__, url_prefix="/letters")
