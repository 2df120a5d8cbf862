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
from dataclasses import dataclass
from email.errors import MessageError
from email.headerregistry import Address

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, false, select
from sqlalchemy.orm import Session, joinedload

from issuer import clock
from issuer.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from issuer.models import ApiToken, Exporter, Manufacturer, Role, User
from issuer.services import audit
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
    if not EMAIL_PATTERN.match(email) or len(email) > 254 or not _is_addr_spec(email):
        raise ValidationFailed(f"{raw!r} is not an e-mail address", details={"email": ["not an e-mail address"]})
    return email


def _is_addr_spec(email: str) -> bool:
    """Whether a mail header reads ``email`` back as this one address. Notifications are mailed
    to it: ``a,b@x.cn`` would reach ``b@x.cn`` too, and ``<b>@x.cn`` nobody."""
    try:
        return Address(addr_spec=email).addr_spec == email
    except (ValueError, IndexError, MessageError):
        return False


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
    session.flush()  # the user's id names it in the audit trail
    _record_user(
        session,
        user,
        action="user.created",
        details={
            "email": user.email,
            "role": user.role,
            "manufacturer": user.manufacturer.code if user.manufacturer is not None else None,
            "exporter": user.exporter.code if user.exporter is not None else None,
        },
    )
    session.commit()
    return user


def _record_user(
    session: Session, user: User, *, action: str, details: dict[str, object], actor: str | None = None
) -> None:
    """An audit entry about a user, under the user's organisation."""
    audit.record(
        session,
        action=action,
        object_type="user",
        object_id=user.id,
        actor=actor,
        manufacturer_id=user.manufacturer_id,
        exporter_id=user.exporter_id,
        details=details,
    )


def record_sign_in(*, session: Session, user: User) -> None:
    """Record that the user signed in to the web pages (from the request's address)."""
    _record_user(session, user, action="user.signed_in", actor=user.email, details={})
    session.commit()


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
    api_token = ApiToken(user_id=user.id, token_hash=_digest(token), prefix=token[:12], name=name.strip()[:100])
    session.add(api_token)
    session.flush()  # the token's id names it in the audit trail (never the token or its digest)
    audit.record(
        session,
        action="token.created",
        object_type="token",
        object_id=api_token.id,
        manufacturer_id=user.manufacturer_id,
        exporter_id=user.exporter_id,
        details={"user": user.email, "user_id": user.id, "name": api_token.name},
    )
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


# -- managing users (the administration pages) -------------------------------------------------

ADMIN_ROLES = (Role.PLATFORM_ADMIN, Role.MANUFACTURER_ADMIN)


def assignable_roles(actor: User) -> tuple[Role, ...]:
    """The roles ``actor`` may give: a platform administrator any; a manufacturer administrator
    only the staff roles of its own manufacturer (never a platform administrator); others none."""
    if actor.user_role is Role.PLATFORM_ADMIN:
        return tuple(Role)
    if actor.user_role is Role.MANUFACTURER_ADMIN:
        return (Role.MANUFACTURER_ADMIN, Role.AFTERSALES)
    return ()


def _managed_by(actor: User) -> Select[tuple[User]]:
    """The users ``actor`` may see and manage — tenant scoping of the users table."""
    query = select(User)
    if actor.user_role is Role.PLATFORM_ADMIN:
        return query
    if actor.user_role is Role.MANUFACTURER_ADMIN and actor.manufacturer_id is not None:
        return query.where(User.manufacturer_id == actor.manufacturer_id)
    return query.where(false())


def list_users(session: Session, actor: User) -> list[User]:
    """The users ``actor`` manages, by e-mail."""
    query = _managed_by(actor).options(joinedload(User.manufacturer), joinedload(User.exporter)).order_by(User.email)
    return list(session.scalars(query))


def get_user(session: Session, actor: User, user_id: int) -> User:
    """One user ``actor`` manages; another tenant's user is not found, like a missing one."""
    user = session.scalar(_managed_by(actor).where(User.id == user_id))
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def _assignable_role(actor: User, role: str) -> Role:
    try:
        wanted = Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValidationFailed(f"role {role!r} is not one of {allowed}", details={"role": [allowed]}) from None
    allowed_roles = assignable_roles(actor)
    if wanted not in allowed_roles:
        names = ", ".join(r.value for r in allowed_roles)
        raise ValidationFailed(
            f"you may give only these roles: {names}", details={"role": [f"you may give only: {names}"]}
        )
    return wanted


def create_user_as(
    *,
    session: Session,
    actor: User,
    email: str,
    role: str,
    password: str,
    manufacturer_code: str | None = None,
    exporter_code: str | None = None,
) -> User:
    """Add a user on behalf of an administrator: a manufacturer administrator adds staff of its
    own manufacturer only, whatever organisation the form named."""
    if not assignable_roles(actor):
        raise Forbidden(f"the role {actor.role} may not add users")
    _assignable_role(actor, role)
    if actor.user_role is Role.MANUFACTURER_ADMIN:
        if actor.manufacturer is None:
            raise Forbidden("a manufacturer administrator without a manufacturer may not add users")
        manufacturer_code, exporter_code = actor.manufacturer.code, None
    return create_user(
        session=session,
        email=email,
        role=role,
        password=password,
        manufacturer_code=manufacturer_code or None,
        exporter_code=exporter_code or None,
    )


def _organisation_for(
    session: Session, role: Role, manufacturer_code: str | None, exporter_code: str | None
) -> tuple[Manufacturer | None, Exporter | None]:
    """The organisation a user of ``role`` belongs to, by the rules of :func:`create_user`."""
    if role.is_manufacturer_staff:
        if not manufacturer_code:
            raise ValidationFailed(f"role {role.value} needs a manufacturer", details={"manufacturer": ["required"]})
        return get_manufacturer(session, manufacturer_code), None
    if role is Role.EXPORTER:
        if not exporter_code:
            raise ValidationFailed("role exporter needs an exporter", details={"exporter": ["required"]})
        return None, get_exporter(session, exporter_code)
    return None, None


def update_user(
    *,
    session: Session,
    actor: User,
    user_id: int,
    role: str,
    manufacturer_code: str | None = None,
    exporter_code: str | None = None,
) -> User:
    """Change a user's role (and, for a platform administrator, organisation).

    Nobody changes their own role: an administrator could otherwise lock the last one out by
    mistake, and a role change should always be a second person's decision."""
    user = get_user(session, actor, user_id)
    new_role = _assignable_role(actor, role)
    if user.id == actor.id and new_role is not user.user_role:
        message = "you cannot change your own role; ask another administrator"
        raise ValidationFailed(message, details={"role": [message]})
    if actor.user_role is Role.MANUFACTURER_ADMIN:
        manufacturer, exporter = user.manufacturer, None  # staff stay with their manufacturer
    else:
        manufacturer, exporter = _organisation_for(session, new_role, manufacturer_code, exporter_code)
    changes: dict[str, list[str | None]] = {}
    if new_role.value != user.role:
        changes["role"] = [user.role, new_role.value]
    old_manufacturer = user.manufacturer.code if user.manufacturer else None
    new_manufacturer = manufacturer.code if manufacturer else None
    if old_manufacturer != new_manufacturer:
        changes["manufacturer"] = [old_manufacturer, new_manufacturer]
    old_exporter = user.exporter.code if user.exporter else None
    new_exporter = exporter.code if exporter else None
    if old_exporter != new_exporter:
        changes["exporter"] = [old_exporter, new_exporter]
    if not changes:
        return user
    user.role = new_role.value
    user.manufacturer = manufacturer
    user.exporter = exporter
    session.flush()
    _record_user(
        session, user, action="user.updated", actor=actor.email, details={"email": user.email, "changes": changes}
    )
    session.commit()
    return user


def set_active(*, session: Session, actor: User, user_id: int, active: bool) -> User:
    """Deactivate or reactivate a user. A deactivated user cannot sign in, its open sessions end
    at the next page, and its API tokens stop working (``user_for_token`` checks ``active``)."""
    user = get_user(session, actor, user_id)
    if user.id == actor.id and not active:
        raise ValidationFailed("you cannot deactivate your own account; ask another administrator")
    if user.active == active:
        return user
    user.active = active
    _record_user(
        session,
        user,
        action="user.reactivated" if active else "user.deactivated",
        actor=actor.email,
        details={"email": user.email},
    )
    session.commit()
    return user


def _checked_password(password: str, *, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValidationFailed(
            f"the password must have at least {MIN_PASSWORD_CHARS} characters",
            details={field: [f"at least {MIN_PASSWORD_CHARS} characters"]},
        )
    return password


def _revoke_all_tokens(session: Session, user: User, *, actor: str, reason: str) -> int:
    """Revoke every active API token of ``user``, each recorded as ``token.revoked``; how many.

    A password reset or change is what someone does who fears the account is in other hands;
    the sessions end with the old password (``User.get_id``), and tokens must end with them or
    whoever holds one keeps the account's powers."""
    tokens = list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))))
    now = clock.now_utc()
    for token in tokens:
        token.revoked_at = now
        audit.record(
            session,
            action="token.revoked",
            object_type="token",
            object_id=token.id,
            actor=actor,
            manufacturer_id=user.manufacturer_id,
            exporter_id=user.exporter_id,
            details={"prefix": token.prefix, "name": token.name, "email": user.email, "reason": reason},
        )
    return len(tokens)


@dataclass(frozen=True)
class PasswordChange:
    """A new password and the API tokens it ended."""

    user: User
    revoked_tokens: int


def set_password(*, session: Session, actor: User, user_id: int, password: str) -> PasswordChange:
    """An administrator sets a new password for a user who lost theirs, and revokes all the
    user's API tokens: a reset is for an account its owner no longer controls.

    Not for the administrator's own account: there the current password must be shown
    (:func:`change_password`), or a session left open would be enough to take the account."""
    user = get_user(session, actor, user_id)
    if user.id == actor.id:
        message = "you cannot reset your own password here; change it on your account page"
        raise ValidationFailed(message, details={"password": [message]})
    user.password_hash = hash_password(_checked_password(password))
    revoked = _revoke_all_tokens(session, user, actor=actor.email, reason="password reset")
    _record_user(
        session,
        user,
        action="user.password_reset",
        actor=actor.email,
        details={"email": user.email, "revoked_tokens": revoked},
    )
    session.commit()
    return PasswordChange(user=user, revoked_tokens=revoked)


def change_password(
    *, session: Session, user: User, current_password: str, new_password: str, revoke_tokens: bool = True
) -> PasswordChange:
    """A user changes their own password; the current one proves it is them at the keyboard.
    Their API tokens are revoked too unless they say otherwise (a routine change need not
    break their programs; a change for fear of a leak should)."""
    if not password_matches(user.password_hash, current_password):
        raise ValidationFailed(
            "the current password is wrong", details={"current_password": ["the current password is wrong"]}
        )
    user.password_hash = hash_password(_checked_password(new_password, field="new_password"))
    revoked = _revoke_all_tokens(session, user, actor=user.email, reason="password changed") if revoke_tokens else 0
    _record_user(session, user, action="user.password_changed", actor=user.email, details={"revoked_tokens": revoked})
    session.commit()
    return PasswordChange(user=user, revoked_tokens=revoked)


def set_locale(*, session: Session, user: User, locale: str) -> User:
    """Remember the user's language; pages are shown in it from the next request on."""
    from issuer.i18n import LANGUAGES

    if locale not in LANGUAGES:
        allowed = ", ".join(LANGUAGES)
        raise ValidationFailed(f"language {locale!r} is not one of {allowed}", details={"locale": [allowed]})
    if user.locale != locale:
        user.locale = locale
        session.commit()
    return user


# -- a user's own API tokens -------------------------------------------------------------------


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    """The user's own API tokens, newest first, revoked ones included (they explain a 401)."""
    query = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    return list(session.scalars(query))


def revoke_token(*, session: Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens; another user's token is not found. Revoking twice
    changes nothing (a double click is not an error)."""
    token = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id))
    if token is None:
        raise NotFound(f"no API token with id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = clock.now_utc()
        audit.record(
            session,
            action="token.revoked",
            object_type="token",
            object_id=token.id,
            actor=user.email,
            manufacturer_id=user.manufacturer_id,
            exporter_id=user.exporter_id,
            details={"prefix": token.prefix, "name": token.name, "email": user.email},
        )
        session.commit()
    return token
