"""Shared set-up of the HTTP API tests: a hosted manufacturer with an outlet, an exporter, and
helpers to call the API as one of their users.

Users are created through the real services; only the Argon2 cost is lowered (API calls use
tokens, never passwords, and the default cost would make every user take ~150 ms).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issuer.models import Exporter, Manufacturer
from issuer.services import accounts
from tests import factories

# Test VINs with correct check digits (DOMAIN.md).
VIN_ACME = "LGXC74C43S0123456"  # WMI LGX
VIN_OTHER = "LRWYGCEK7RC654321"  # WMI LRW
VIN_SMALL = "LA9AB1C23TA123123"  # small maker LA9 with plant 123
BRAND = "Example"
MODEL = "E1"
APPLICATION_DATE = "2026-10-01"
REGISTRATION_DATE = "2026-06-01"  # 122 days before APPLICATION_DATE: a letter is required


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Caller:
    """A user of the API and its token; ``headers`` authenticates a test-client call."""

    session: Session
    token: str
    email: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def caller(
    session: Session, role: str, *, manufacturer: Manufacturer | None = None, exporter: Exporter | None = None
) -> Caller:
    user = factories.user(session, role, manufacturer=manufacturer, exporter=exporter)
    return Caller(session=session, token=factories.token(session, user), email=user.email)


def vehicle(vin: str = VIN_ACME, **overrides: Any) -> dict[str, Any]:
    """One vehicle of a request body, valid and eligible for ``acme`` unless overridden."""
    body: dict[str, Any] = {
        "vin": vin,
        "brand": BRAND,
        "model": MODEL,
        "registration_date": REGISTRATION_DATE,
        "export_transfer_date": None,
        "destination": "KZ",
    }
    body.update(overrides)
    return body


def request_body(
    vehicles: Iterable[dict[str, Any]],
    *,
    manufacturer: str | None = None,
    application_date: str = APPLICATION_DATE,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"application_date": application_date, "vehicles": list(vehicles), **extra}
    if manufacturer is not None:
        body["manufacturer"] = manufacturer
    return body


def count(session: Session, model: type) -> int:
    """Rows of ``model`` as the database holds them now (the app's commits are visible)."""
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is a JSON error of the contract's shape; returns its ``error`` object."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    text = response.get_data(as_text=True)
    assert "<html" not in text.lower()
    assert "Traceback" not in text
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if status == 422:
        # Every 422 names its bad fields the same way, whichever layer found them.
        assert isinstance(error["details"], list)
        assert all(set(d) == {"field", "message"} for d in error["details"])
    return error


@pytest.fixture
def acme(session: Session) -> Manufacturer:
    """A vehicle manufacturer holding WMI LGX, with an outlet for every brand in Kazakhstan."""
    manufacturer = factories.manufacturer(session, "ACME", wmis=("LGX",))
    factories.outlet(session, manufacturer, code="KZ-ALMATY", country="KZ")
    return manufacturer


@pytest.fixture
def exporter_org(session: Session) -> Exporter:
    return factories.exporter(session, "EXP1")


@pytest.fixture
def exporter(session: Session, exporter_org: Exporter) -> Caller:
    return caller(session, "exporter", exporter=exporter_org)


@pytest.fixture
def aftersales(session: Session, acme: Manufacturer) -> Caller:
    return caller(session, "aftersales", manufacturer=acme)
