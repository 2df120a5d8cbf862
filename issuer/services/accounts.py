"""Use cases for users and API tokens.

Passwords are hashed with Argon2id (argon2-cffi). API tokens are random 256-bit secrets shown
once; only their SHA-256 digest is stored, which is enough for a secret of that entropy and lets
a look-up be a single indexed query.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from issuer import clock
from issuer.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from issuer.models import ApiToken, Role, User
from issuer.services.organisations import get_exporter, get_manufacturer

TOKEN_PREFIX = "isr_"  # noqa: S105 - a public prefix, not a secret
MIN_PASSWORD_CHARS = 10
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Writing last_used_at on every call would turn each read into a write; a coarse stamp suffices.
LAST_USED_RESOLUTION = dt.timedelta(minutes=5)

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if not EMAIL_PATTERN.match(email) or len(email) > 254:
        raise ValidationFailed(f"{raw!r} is not an e-mail address", details={"email": ["not an e-mail address"]})
    return email


def create_user(
    *,
    session: Session,
    email: str,
    role: str,
    password: str,
    manufacturer_code: str | None = None,
    exporter_code: str | None = None,
) -> User:
    """Add a user. Manufacturer staff belong to a manufacturer, exporters to an exporter;
    reviewers and platform administrators belong to no organisation."""
    email = normalise_email(email)
    try:
        user_role = Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValidationFailed(f"role {role!r} is not one of {allowed}", details={"role": [allowed]}) from None
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValidationFailed(
            f"the password must have at least {MIN_PASSWORD_CHARS} characters",
            details={"password": [f"at least {MIN_PASSWORD_CHARS} characters"]},
        )
    if manufacturer_code and exporter_code:
        raise ValidationFailed("a user belongs to a manufacturer or to an exporter, not both")
    user = User(email=email, role=user_role.value)
    if user_role.is_manufacturer_staff:
        if not manufacturer_code:
            raise ValidationFailed(
                f"role {user_role.value} needs --manufacturer", details={"manufacturer": ["required"]}
            )
        user.manufacturer = get_manufacturer(session, manufacturer_code)
    elif user_role is Role.EXPORTER:
        if not exporter_code:
            raise ValidationFailed("role exporter needs --exporter", details={"exporter": ["required"]})
        user.exporter = get_exporter(session, exporter_code)
    elif manufacturer_code or exporter_code:
        raise ValidationFailed(f"role {user_role.value} belongs to no manufacturer or exporter")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with e-mail {email} already exists", details={"email": email})
    user.password_hash = hash_password(password)  # last: hashing is deliberately slow
    session.add(user)
    session.commit()
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(*, session: Session, email: str, name: str = "") -> str:
    """Create an API token for the user and return it; it cannot be shown again."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with e-mail {email.strip()!r}")
    if not user.active:
        raise Conflict(f"user {user.email} is deactivated")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=_digest(token), prefix=token[:12], name=name.strip()[:100]))
    session.commit()
    return token


def user_for_token(*, session: Session, token: str) -> User:
    """The active user a bearer token belongs to; raises ``Unauthenticated`` otherwise."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise Unauthenticated("the bearer token is not valid")
    api_token = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _digest(token)).options(joinedload(ApiToken.user))
    )
    if api_token is None or api_token.revoked_at is not None or not api_token.user.active:
        raise Unauthenticated("the bearer token is not valid")
    now = clock.now_utc()
    if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
        api_token.last_used_at = now
        session.commit()
    return api_token.user


def authenticate(*, session: Session, email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None. An unknown e-mail costs the same
    hash as a wrong password, so response times do not reveal which accounts exist."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        password_matches(_DUMMY_HASH, password)
        return None
    if not password_matches(user.password_hash, password) or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.commit()
    return user


_DUMMY_HASH = _hasher.hash("no-such-user-password")
