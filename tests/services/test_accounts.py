"""Users (roles and their organisations, hashed passwords) and API tokens (digests only)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issuer import clock
from issuer.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from issuer.models import ApiToken, Exporter, Manufacturer, User
from issuer.services import accounts
from tests import factories

PASSWORD = "correct-horse-battery"


@pytest.fixture
def orgs(session: Session) -> tuple[Manufacturer, Exporter]:
    return factories.manufacturer(session), factories.exporter(session)


def user_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


@pytest.mark.parametrize(
    ("role", "belongs_to"),
    [
        ("manufacturer_admin", "manufacturer"),
        ("aftersales", "manufacturer"),
        ("exporter", "exporter"),
        ("reviewer", None),
        ("platform_admin", None),
    ],
)
def test_create_user_links_the_right_organisation_when_role_needs_one(
    session: Session, orgs: tuple[Manufacturer, Exporter], role: str, belongs_to: str | None
) -> None:
    maker, exporter = orgs

    user = accounts.create_user(
        session=session,
        email=" Clerk@Example.TEST ",
        role=role,
        password=PASSWORD,
        manufacturer_code=maker.code.lower() if belongs_to == "manufacturer" else None,
        exporter_code=exporter.code.lower() if belongs_to == "exporter" else None,
    )

    session.expire_all()
    stored = session.get(User, user.id)
    assert stored is not None
    assert (stored.email, stored.role, stored.active) == ("clerk@example.test", role, True)
    assert stored.manufacturer_id == (maker.id if belongs_to == "manufacturer" else None)
    assert stored.exporter_id == (exporter.id if belongs_to == "exporter" else None)


REFUSALS = {
    "staff_without_manufacturer": ("aftersales", None, None, ValidationFailed, "needs --manufacturer"),
    "staff_with_exporter_only": ("manufacturer_admin", None, "E", ValidationFailed, "needs --manufacturer"),
    "exporter_without_exporter": ("exporter", None, None, ValidationFailed, "needs --exporter"),
    "exporter_with_manufacturer_only": ("exporter", "M", None, ValidationFailed, "needs --exporter"),
    "reviewer_with_manufacturer": ("reviewer", "M", None, ValidationFailed, "belongs to no"),
    "platform_admin_with_exporter": ("platform_admin", None, "E", ValidationFailed, "belongs to no"),
    "both_organisations": ("aftersales", "M", "E", ValidationFailed, "not both"),
    "unknown_role": ("admin", "M", None, ValidationFailed, "role 'admin' is not one of"),
    "unknown_manufacturer": ("aftersales", "NOPE", None, NotFound, "NOPE"),
    "unknown_exporter": ("exporter", None, "NOPE", NotFound, "NOPE"),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_create_user_writes_nothing_when_role_and_organisation_do_not_fit(
    session: Session, orgs: tuple[Manufacturer, Exporter], case: tuple[str, str | None, str | None, type, str]
) -> None:
    role, manufacturer, exporter, error, fragment = case
    codes = {"M": orgs[0].code, "E": orgs[1].code, "NOPE": "NOPE", None: None}

    with pytest.raises(error, match=fragment):
        accounts.create_user(
            session=session,
            email="someone@example.test",
            role=role,
            password=PASSWORD,
            manufacturer_code=codes[manufacturer],
            exporter_code=codes[exporter],
        )
    session.rollback()
    assert user_count(session) == 0


def test_create_user_refuses_password_when_shorter_than_ten_characters(session: Session) -> None:
    with pytest.raises(ValidationFailed, match="at least 10 characters"):
        accounts.create_user(session=session, email="r@example.test", role="reviewer", password="123456789")
    session.rollback()
    assert user_count(session) == 0

    accounts.create_user(session=session, email="r@example.test", role="reviewer", password="1234567890")
    assert user_count(session) == 1


@pytest.mark.parametrize(
    "email", ["", "reviewer", "reviewer@example", "re viewer@example.test", "a@@example.test", "x" * 250 + "@a.cn"]
)
def test_create_user_refuses_email_when_it_is_not_an_address(session: Session, email: str) -> None:
    with pytest.raises(ValidationFailed, match="is not an e-mail address"):
        accounts.create_user(session=session, email=email, role="reviewer", password=PASSWORD)
    session.rollback()
    assert user_count(session) == 0


def test_create_user_refuses_email_when_it_exists_in_another_case(session: Session) -> None:
    accounts.create_user(session=session, email="clerk@example.test", role="reviewer", password=PASSWORD)

    with pytest.raises(Conflict, match="already exists"):
        accounts.create_user(session=session, email="CLERK@Example.test", role="platform_admin", password=PASSWORD)
    session.rollback()
    assert user_count(session) == 1


def test_create_user_stores_an_argon2_hash_when_given_a_password(session: Session) -> None:
    user = accounts.create_user(session=session, email="r@example.test", role="reviewer", password=PASSWORD)

    session.expire_all()
    stored = session.scalar(select(User.password_hash).where(User.id == user.id))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert accounts.password_matches(stored, PASSWORD)
    assert not accounts.password_matches(stored, PASSWORD + "x")
    assert not accounts.password_matches("not a hash", PASSWORD)


@pytest.fixture
def reviewer(session: Session) -> User:
    return accounts.create_user(session=session, email="reviewer@example.test", role="reviewer", password=PASSWORD)


def test_create_token_stores_only_its_sha256_digest_when_token_is_made(session: Session, reviewer: User) -> None:
    token = accounts.create_token(session=session, email=" REVIEWER@example.test ")

    session.expire_all()
    [stored] = session.scalars(select(ApiToken).where(ApiToken.user_id == reviewer.id))
    assert token.startswith("isr_")
    assert len(token) >= 40
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (stored.token_hash, stored.prefix, stored.name)
    assert token.startswith(stored.prefix)


def test_user_for_token_returns_the_user_when_token_is_valid(session: Session, reviewer: User) -> None:
    token = accounts.create_token(session=session, email=reviewer.email)
    accounts.create_token(session=session, email=reviewer.email)  # a second token does not replace the first

    assert accounts.user_for_token(session=session, token=token).id == reviewer.id
    stamped = session.scalar(select(ApiToken.last_used_at).where(ApiToken.token_hash == accounts._digest(token)))
    assert stamped == clock.now_utc()


@pytest.mark.parametrize("forged", ["", "isr_", "Bearer x", "isr_" + "A" * 43, "isr_" + "A" * 300])
def test_user_for_token_refuses_when_token_is_unknown(session: Session, reviewer: User, forged: str) -> None:
    accounts.create_token(session=session, email=reviewer.email)

    with pytest.raises(Unauthenticated):
        accounts.user_for_token(session=session, token=forged)


def test_user_for_token_refuses_when_token_is_revoked(session: Session, reviewer: User) -> None:
    token = accounts.create_token(session=session, email=reviewer.email)
    api_token = session.scalar(select(ApiToken).where(ApiToken.user_id == reviewer.id))
    assert api_token is not None
    api_token.revoked_at = clock.now_utc()
    session.commit()

    with pytest.raises(Unauthenticated):
        accounts.user_for_token(session=session, token=token)


def test_user_for_token_refuses_when_user_is_deactivated(session: Session, reviewer: User) -> None:
    token = accounts.create_token(session=session, email=reviewer.email)
    reviewer.active = False
    session.commit()

    with pytest.raises(Unauthenticated):
        accounts.user_for_token(session=session, token=token)
    with pytest.raises(Conflict, match="deactivated"):
        accounts.create_token(session=session, email=reviewer.email)


def test_create_token_raises_not_found_when_user_is_unknown(session: Session) -> None:
    with pytest.raises(NotFound):
        accounts.create_token(session=session, email="nobody@example.test")
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ApiToken)) == 0
