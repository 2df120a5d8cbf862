"""Shared set-up of the page tests: sign a user in through the real login form, and read CSRF
tokens from pages. Pages are asked for in English (Accept-Language) unless a test says otherwise,
so assertions can name English text; the Chinese pages are tested where languages are."""

from __future__ import annotations

import re
from typing import Any

import pytest

from issuer.models import User
from tests import factories

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The first CSRF token on a page."""
    match = CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1) or match.group(2)


class Browser:
    """A test client that signs in through /login and sends CSRF tokens with its forms."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"

    def sign_in(self, user: User, password: str = factories.PASSWORD) -> Browser:
        token = csrf_token(self.client.get("/login").get_data(as_text=True))
        answer = self.client.post("/login", data={"email": user.email, "password": password, "csrf_token": token})
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return self

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, form_page: str | None = None, **kwargs: Any
    ) -> Any:
        """POST a form; the CSRF token comes from ``form_page`` (default: the same path)."""
        data = dict(data or {})
        if "csrf_token" not in data:
            data["csrf_token"] = csrf_token(self.client.get(form_page or path).get_data(as_text=True))
        return self.client.post(path, data=data, **kwargs)


@pytest.fixture
def browser(client: Any) -> Browser:
    return Browser(client)


@pytest.fixture
def make_browser(app: Any):  # type: ignore[no-untyped-def]
    """A new, separately signed-in client for each user (several users in one test)."""

    def _make(user: User | None = None) -> Browser:
        b = Browser(app.test_client())
        return b.sign_in(user) if user is not None else b

    return _make
