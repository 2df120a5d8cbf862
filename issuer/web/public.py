"""Public endpoints, no account needed: the published seal key set."""

from __future__ import annotations

from flask import Blueprint, jsonify

from issuer.services.keys import published_keys
from issuer.web.session import db_session

public = Blueprint("public", __name__)


@public.get("/.well-known/letter-keys.json")
def letter_keys():  # type: ignore[no-untyped-def]
    """Every seal key ever used, with its certificate, so letters can be checked offline."""
    response = jsonify({"keys": published_keys(db_session())})
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response
