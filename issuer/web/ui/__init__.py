"""The server-rendered web application: one blueprint per area, a navigation menu per role,
and the helpers every page shares.

Pages authenticate with the session cookie and check roles with ``issuer.web.auth.requires``
(the same decorator as the API); what a user may see is decided by the services' scoped
queries. Forms are Flask-WTF forms: every POST carries a CSRF token, and a form with bad input
is rendered again with each error beside its field and what was typed kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from issuer.domain.countries import lookup_country
from issuer.i18n import LANGUAGES
from issuer.models import Role


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: Any  # a lazy translation
    roles: tuple[Role, ...]
    # The pages the item stands for: endpoints starting with one of these (default: its blueprint).
    covers: tuple[str, ...] = ()

    def is_current(self, endpoint: str | None) -> bool:
        if not endpoint:
            return False
        return endpoint.startswith(self.covers or (self.endpoint.split(".")[0] + ".",))


STAFF = (Role.AFTERSALES, Role.MANUFACTURER_ADMIN)
ADMINS = (Role.MANUFACTURER_ADMIN, Role.PLATFORM_ADMIN)
NAVIGATION: tuple[NavItem, ...] = (
    NavItem("precheck.index", _l("Precheck"), (Role.EXPORTER,)),
    NavItem("requests_ui.index", _l("Requests"), (Role.EXPORTER, *STAFF, Role.PLATFORM_ADMIN)),
    NavItem("letters_ui.index", _l("Letters"), (Role.EXPORTER, *STAFF, Role.PLATFORM_ADMIN)),
    NavItem("registry.outlets", _l("Outlets"), STAFF, ("registry.outlet",)),
    NavItem("registry.vehicles", _l("Production registry"), STAFF, ("registry.vehicles", "registry.import_job")),
    NavItem("registry.blocks", _l("Negative list"), STAFF, ("registry.block",)),
    NavItem("registry.coverage", _l("Coverage"), STAFF, ("registry.coverage",)),
    NavItem("admin.manufacturers", _l("Manufacturers"), (Role.PLATFORM_ADMIN,), ("admin.manufacturer",)),
    NavItem("admin.exporters", _l("Exporters"), (Role.PLATFORM_ADMIN,), ("admin.exporter",)),
    NavItem("admin.users", _l("Users"), ADMINS, ("admin.user",)),
    NavItem("admin.keys", _l("Seal keys"), ADMINS, ("admin.key", "admin.seal_image")),
    NavItem("outbox.index", _l("Outbox"), ADMINS),
    NavItem("audit_ui.index", _l("Audit trail"), ADMINS),
    NavItem("verify.verify_form", _l("Verify a letter"), tuple(Role), ("verify.",)),
)


def navigation_for(role: Role) -> list[NavItem]:
    """The menu of a role: the items it may use whose pages exist."""
    views = current_app.view_functions
    return [item for item in NAVIGATION if role in item.roles and item.endpoint in views]


def _page_context() -> dict[str, Any]:
    items: list[NavItem] = []
    if current_user and current_user.is_authenticated:
        items = navigation_for(current_user.user_role)
    return {
        "navigation": items,
        "languages": LANGUAGES,
        "current_endpoint": request.endpoint,
        "has_page": lambda endpoint: endpoint in current_app.view_functions,
        "role_label": role_label,
        "get_locale": get_locale,
        "audit_action_label": audit_action_label,
        "letter_status_label": letter_status_label,
        "in_language": in_language,
        "country_name": country_name,
    }


ROLE_LABELS = {
    Role.MANUFACTURER_ADMIN: _l("Manufacturer administrator"),
    Role.AFTERSALES: _l("After-sales"),
    Role.EXPORTER: _l("Exporter"),
    Role.REVIEWER: _l("Reviewer"),
    Role.PLATFORM_ADMIN: _l("Platform administrator"),
}


# Every action the audit trail records (issuer.services.audit), as pages name it.
AUDIT_ACTIONS = {
    "user.signed_in": _l("Signed in"),
    "user.created": _l("User created"),
    "user.updated": _l("User changed"),
    "user.deactivated": _l("User deactivated"),
    "user.reactivated": _l("User reactivated"),
    "user.password_reset": _l("Password reset by an administrator"),
    "user.password_changed": _l("Password changed"),
    "token.created": _l("API token created"),
    "token.revoked": _l("API token revoked"),
    "manufacturer.created": _l("Manufacturer created"),
    "manufacturer.updated": _l("Manufacturer changed"),
    "manufacturer.seal_image_set": _l("Seal image uploaded"),
    "exporter.created": _l("Exporter created"),
    "exporter.blocked": _l("Exporter put on the negative list"),
    "exporter.unblocked": _l("Exporter taken off the negative list"),
    "outlet.created": _l("Outlet added"),
    "outlet.updated": _l("Outlet changed"),
    "outlets.imported": _l("Outlets imported"),
    "vehicles.imported": _l("Production registry imported"),
    "request.submitted": _l("Request submitted"),
    "request.decided": _l("Request decided"),
    "request.reopened": _l("Decision undone: the letter could not be issued"),
    "letter.issued": _l("Letter issued"),
    "letter.revoked": _l("Letter revoked"),
    "letter.superseded": _l("Letter superseded"),
    "key.generated": _l("Seal key generated"),
    "key.rotated": _l("Seal key rotated"),
    "key.imported": _l("CA-issued seal key imported"),
    "key.used": _l("Seal key used"),
    "mail.retried": _l("Mail queued again"),
}


def audit_action_label(action: str) -> str:
    label = AUDIT_ACTIONS.get(action)
    return str(label) if label is not None else action


LETTER_STATUS_LABELS = {
    "valid": _l("Valid"),
    "revoked": _l("Revoked"),
    "expired": _l("Expired"),
    "superseded": _l("Superseded"),
    "pending": _l("Being issued"),
}


def letter_status_label(status: str) -> str:
    label = LETTER_STATUS_LABELS.get(status)
    return str(label) if label is not None else status


def in_language(zh: str, en: str) -> str:
    """Of a text given in both languages, the one of the page."""
    return zh if str(get_locale()) == "zh" else en


def country_name(code: str) -> str:
    """A country's short name in the page's language (GB/T 2659 in Chinese), or the code."""
    country = lookup_country(code) if code else None
    if country is None:
        return code
    return in_language(country.name_zh, country.name_en)


def role_label(role: str) -> str:
    """A role's name in the page's language."""
    try:
        return str(ROLE_LABELS[Role(role)])
    except ValueError:
        return role


def register_ui(app: Flask) -> None:
    from issuer.web.ui.account import account
    from issuer.web.ui.admin import admin
    from issuer.web.ui.audit import audit_ui
    from issuer.web.ui.letters import letters_ui
    from issuer.web.ui.outbox import outbox
    from issuer.web.ui.precheck import precheck
    from issuer.web.ui.registry import registry
    from issuer.web.ui.requests import requests_ui

    for blueprint in (account, admin, audit_ui, letters_ui, outbox, precheck, registry, requests_ui):
        app.register_blueprint(blueprint)
    app.context_processor(_page_context)
