"""Who is calling, and may they? Authentication and role checks in one place.

The API authenticates with ``Authorization: Bearer <token>``. Views declare the roles that may
call them with :func:`requires`; tenant scoping (which objects a user may see) is done by the
services' queries, which take the user.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from issuer.errors import Forbidden, Unauthenticated
from issuer.models import Role, User
from issuer.services.accounts import user_for_token
from issuer.web.session import db_session

F = TypeVar("F", bound=Callable[..., Any])


def current_user() -> User:
    """The authenticated user of this request; raises ``Unauthenticated`` when there is none."""
    user = g.get("user")
    if user is not None:
        return user
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("an Authorization: Bearer <token> header is required")
    user = user_for_token(session=db_session(), token=token.strip())
    g.user = user
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
