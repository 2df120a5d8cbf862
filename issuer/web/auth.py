"""Who is calling, and may they? Authentication and role checks in one place, for the JSON API
and the web pages alike.

The API (``/api/…``) authenticates with ``Authorization: Bearer <token>`` and never with
cookies, so it needs no CSRF token; pages authenticate with the Flask-Login session cookie, and
their forms carry CSRF tokens. Views of both declare the roles that may call them with
:func:`requires`. Tenant scoping (which objects a user may see) is done by the services'
queries (``issuer.services.scoping``), which take the user: a page and an API call of the same
user see exactly the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, g, request
from flask_login import current_user as session_user

from issuer.errors import Forbidden, Unauthenticated
from issuer.models import Role, User
from issuer.services import audit
from issuer.services.accounts import user_for_token
from issuer.web.session import db_session

F = TypeVar("F", bound=Callable[..., Any])


def client_address() -> str:
    return request.remote_addr or "unknown"


def register_audit_context(app: Flask) -> None:
    """Changes made while a request runs are recorded as the visitor's (its address) until a user
    authenticates (:func:`current_user`); the context ends with the request, so no actor outlives
    it in a reused thread."""

    @app.before_request
    def start_audit_context() -> None:
        audit.set_context(audit.AuditContext(actor="anonymous", origin=client_address()))

    @app.teardown_request
    def end_audit_context(_error: BaseException | None) -> None:
        audit.set_context(None)


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def _authenticate() -> User:
    if not is_api_request():
        if session_user and session_user.is_authenticated:
            return session_user._get_current_object()  # type: ignore[no-any-return]
        raise Unauthenticated("sign in to see this page")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("an Authorization: Bearer <token> header is required")
    return user_for_token(session=db_session(), token=token.strip())


def current_user() -> User:
    """The authenticated user of this request; raises ``Unauthenticated`` when there is none.
    Audit entries written from here on name this user and the client's address."""
    user = g.get("user")
    if user is not None:
        return user  # type: ignore[no-any-return]
    user = _authenticate()
    g.user = user
    audit.set_context(audit.AuditContext(actor=user.email, origin=client_address()))
    return user


def requires(*roles: Role) -> Callable[[F], F]:
    """Allow the view only to authenticated users holding one of ``roles``."""

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user.user_role not in roles:
                raise Forbidden(f"the role {user.role} may not do this")
            return view(*args, **kwargs)

        guarded.allowed_roles = roles  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


MANUFACTURER_STAFF = (Role.MANUFACTURER_ADMIN, Role.AFTERSALES)
