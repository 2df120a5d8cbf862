"""Helpers of the administration, key and account page tests."""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy.orm import Session

from issuer.models import Exporter, Manufacturer, User
from issuer.services import accounts
from tests import factories


def user(
    session: Session, role: str, *, manufacturer: Manufacturer | None = None, exporter: Exporter | None = None
) -> User:
    """A user who reads the pages in English (a new account's language is Chinese, which would
    win over the test client's Accept-Language), so assertions can name the English text."""
    created = factories.user(session, role, manufacturer=manufacturer, exporter=exporter)
    return accounts.set_locale(session=session, user=created, locale="en")


def page(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def error_beside(text: str, field_id: str) -> str:
    """The error shown beside a field (the form macro gives it the id ``<field>-error``)."""
    marker = f'id="{field_id}-error">'
    assert marker in text, f"no error beside {field_id}"
    return text.split(marker, 1)[1].split("</p>", 1)[0]
