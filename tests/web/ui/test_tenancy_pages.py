"""A user of one tenant never sees another's data, on any page.

Two manufacturers (A and B) and two exporters (A and B), each with requests, letters, outlets,
import jobs, users, API tokens and audit entries. Then EVERY GET page of the web application
(enumerated from ``app.url_map``, so a page added later is covered without editing this file)
is asked for by each user of tenant B, by a reviewer, and by an anonymous visitor, with its URL
parameters naming tenant A's objects:

- an anonymous visitor is sent to the login page;
- a page about one of A's objects answers 403 or 404 to everyone of B;
- a page B may open (a list, a form) contains none of A's identifying strings.

A page whose URL parameter this test cannot fill fails the test: add its value to
``fill_values`` below rather than letting a page go untested.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.routing import Rule

from issuer.models import ImportJob, ImportState, OutboxMessage, User
from issuer.services import accounts, audit, organisations, outlets
from issuer.services.keys import generate_key
from tests import factories
from tests.conftest import TODAY

UI_BLUEPRINTS = (
    "precheck.",
    "requests_ui.",
    "letters_ui.",
    "registry.",
    "admin.",
    "account.",
    "outbox.",
    "audit_ui.",
)
# The pages the issue names (COMMON.md): each must exist, so a missing page fails here.
EXPECTED_ENDPOINTS = {
    "precheck.index",
    "precheck.template",
    "requests_ui.index",
    "requests_ui.detail",
    "letters_ui.index",
    "letters_ui.detail",
    "letters_ui.pdf",
    "letters_ui.revoke",
    "registry.outlets",
    "registry.outlet_new",
    "registry.outlet_edit",
    "registry.outlets_import",
    "registry.vehicles",
    "registry.import_job",
    "registry.blocks",
    "registry.coverage",
    "admin.manufacturers",
    "admin.manufacturer_new",
    "admin.manufacturer_edit",
    "admin.exporters",
    "admin.exporter_new",
    "admin.users",
    "admin.user_new",
    "admin.user_edit",
    "admin.keys",
    "account.index",
    "outbox.index",
    "audit_ui.index",
}
# URL parameters that name no tenant's object (a page with only these is "a page B may open").
NEUTRAL_VALUES = {"fmt": "xlsx"}

REGISTERED_ON = TODAY - dt.timedelta(days=30)
APPLYING_ON = TODAY + dt.timedelta(days=10)


@dataclass
class Tenant:
    """One side's objects; ``secrets`` are the strings that identify them on a page."""

    manufacturer: Any
    exporter: Any
    users: dict[str, User]
    vins: list[str]
    request_ids: list[int] = field(default_factory=list)
    letter_numbers: list[str] = field(default_factory=list)
    outlet_codes: list[str] = field(default_factory=list)
    import_job_ids: list[int] = field(default_factory=list)
    outbox_message_ids: list[int] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)


def _api(client: Any, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    """Call the JSON API as the token's user. The app names that user in the audit context of
    this thread; it is cleared afterwards, so the services this test calls directly next are
    not recorded as that user's doing."""
    try:
        return client.open(path, method=method, json=body, headers={"Authorization": f"Bearer {token}"})
    finally:
        audit.set_context(None)


def _build_tenant(session: Any, settings: Any, client: Any, *, key: str, wmi: str, seed: int) -> Tenant:
    """A manufacturer ready to issue with its registry and outlets, an exporter that asks it for
    letters, a user of every role, tokens, one issued letter, one revoked, one request waiting."""
    upper = key.upper()
    maker = organisations.create_manufacturer(
        session=session,
        code=f"{upper}MOTOR",
        name=f"{key}甲乙汽车制造有限公司",
        name_en=f"{key.title()} Motor Works Co., Ltd.",
        uscc=factories.uscc(7000 + seed),
        wmis=(wmi,),
    )
    generate_key(
        session=session, manufacturer_code=maker.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
    )
    vins = factories.random_vins(wmi, 9, seed=seed)
    factories.register(session, maker, vins)
    exporter = organisations.create_exporter(
        session=session, code=f"{upper}EXPORT", name=f"{key}丙丁出口贸易有限公司", uscc=factories.uscc(800_000 + seed)
    )
    users = {
        role: accounts.create_user(
            session=session,
            email=f"{key}-{role.replace('_', '-')}@{key}-tenant.test",
            role=role,
            password=factories.PASSWORD,
            manufacturer_code=maker.code if role != "exporter" else None,
            exporter_code=exporter.code if role == "exporter" else None,
        )
        for role in ("exporter", "aftersales", "manufacturer_admin")
    }
    tenant = Tenant(manufacturer=maker, exporter=exporter, users=users, vins=vins)
    tokens = {
        role: accounts.create_token(session=session, email=u.email, name=f"{key}-token-{role}")
        for role, u in users.items()
    }
    for country, n in (("KZ", 1), ("KZ", 2), ("TH", 3)):
        code = f"{upper}-{country}-OUTLET-{n}"
        outlets.create_outlet(
            session=session,
            manufacturer=maker,
            actor=users["aftersales"].email,
            values={
                "code": code,
                "country": country,
                "name": f"{key.title()} Service Centre {n}",
                "provider": f"{key.title()} Aftercare Provider {n} LLP",
                "address": f"{n} {key.title()} Avenue",
                "city": "Almaty",
                "phone": "+7 700 000 0000",
                "email": f"outlet{n}@{key}-outlets.test",
                "brands": "",
                "valid_from": dt.date(2025, 1, 1),
                "valid_to": None,
            },
        )
        tenant.outlet_codes.append(code)

    def file_request(vins: list[str], reference: str) -> int:
        body = {
            "manufacturer": maker.code,
            "application_date": APPLYING_ON.isoformat(),
            "reference": reference,
            "vehicles": [
                {
                    "vin": vin,
                    "brand": "Example",
                    "model": "E1",
                    "registration_date": REGISTERED_ON.isoformat(),
                    "destination": "KZ",
                }
                for vin in vins
            ],
        }
        filed = _api(client, "POST", "/api/v1/requests", tokens["exporter"], body)
        assert filed.status_code == 201, filed.json
        tenant.request_ids.append(filed.json["id"])
        return int(filed.json["id"])

    for part, reference in ((vins[0:3], f"{upper}-CONTRACT-ISSUED"), (vins[3:5], f"{upper}-CONTRACT-REVOKED")):
        request_id = file_request(part, reference)
        decided = _api(
            client, "POST", f"/api/v1/requests/{request_id}/decision", tokens["aftersales"], {"approve": "all_eligible"}
        )
        assert decided.status_code == 200, decided.json
        tenant.letter_numbers.append(decided.json["letter_number"])
    revoked = _api(
        client,
        "POST",
        f"/api/v1/letters/{tenant.letter_numbers[1]}/revoke",
        tokens["aftersales"],
        {"reason": f"{key} revocation reason"},
    )
    assert revoked.status_code == 200, revoked.json
    file_request(vins[5:8], f"{upper}-CONTRACT-WAITING")  # in the review queue

    blocked = organisations.create_exporter(
        session=session, code=f"{upper}BLOCKED", name=f"{key}戊己被列入名单公司", uscc=factories.uscc(900_000 + seed)
    )
    organisations.block_exporter(
        session=session,
        manufacturer_code=maker.code,
        exporter_code=blocked.code,
        reason=f"{key} negative list reason",
        actor=users["manufacturer_admin"].email,
    )
    job = ImportJob(
        manufacturer_id=maker.id,
        kind="vehicles",
        filename=f"{key}-production-registry.csv",
        stored_path=str(settings.keys_dir / f"{key}-import.csv"),
        state=ImportState.DONE.value,
        created_by=users["aftersales"].email,
    )
    session.add(job)
    session.commit()
    tenant.import_job_ids.append(job.id)

    # The mail about its requests and letters (written by the notifications with each change).
    tenant.outbox_message_ids = list(
        session.scalars(select(OutboxMessage.id).where(OutboxMessage.manufacturer_id == maker.id))
    )
    assert tenant.outbox_message_ids, "no mail about the tenant's requests was written to the outbox"

    letters = [_api(client, "GET", f"/api/v1/letters/{n}", tokens["exporter"]).json for n in tenant.letter_numbers]
    tenant.secrets = {
        maker.code,
        maker.name,
        maker.name_en,
        exporter.code,
        exporter.name,
        blocked.name,
        f"{key} negative list reason",
        f"{key} revocation reason",
        f"{key}-production-registry.csv",
        *vins,
        *tenant.letter_numbers,
        *(letter["verification_code"] for letter in letters if letter.get("verification_code")),
        *tenant.outlet_codes,
        *(f"{key.title()} Service Centre {n}" for n in (1, 2, 3)),
        *(u.email for u in users.values()),
        *(f"{key}-token-{role}" for role in users),
        f"{upper}-CONTRACT-ISSUED",
        f"{upper}-CONTRACT-REVOKED",
        f"{upper}-CONTRACT-WAITING",
        # Links to its requests (their ids are small numbers, found everywhere on a page).
        *(f'/requests/{request_id}"' for request_id in tenant.request_ids),
    }
    return tenant


@dataclass
class Tenants:
    a: Tenant
    b: Tenant
    reviewer: User
    platform_admin: User


@pytest.fixture
def tenants(session: Any, settings: Any, client: Any) -> Tenants:
    a = _build_tenant(session, settings, client, key="alpha", wmi="LGX", seed=11)
    b = _build_tenant(session, settings, client, key="beta", wmi="LRW", seed=12)
    reviewer = accounts.create_user(
        session=session, email="reviewer@customs-office.test", role="reviewer", password=factories.PASSWORD
    )
    admin = accounts.create_user(
        session=session, email="root@platform-operator.test", role="platform_admin", password=factories.PASSWORD
    )
    return Tenants(a=a, b=b, reviewer=reviewer, platform_admin=admin)


# -- the pages ---------------------------------------------------------------------------------


def ui_get_rules(app: Flask) -> list[Rule]:
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith(UI_BLUEPRINTS) and "GET" in (rule.methods or set())
        ),
        key=lambda rule: rule.rule,
    )


def fill_values(tenant: Tenant) -> dict[tuple[str, str], Any]:
    """The value of each URL parameter, naming one of ``tenant``'s objects: by (endpoint,
    parameter), or by ("*", parameter) for every endpoint. Add a line for a new parameter."""
    return {
        ("*", "request_id"): tenant.request_ids[0],
        ("*", "number"): tenant.letter_numbers[0],
        ("*", "job_id"): tenant.import_job_ids[0],
        ("*", "user_id"): tenant.users["aftersales"].id,
        ("*", "message_id"): tenant.outbox_message_ids[0],
        ("registry.outlet_edit", "code"): tenant.outlet_codes[0],
        ("admin.manufacturer_edit", "code"): tenant.manufacturer.code,
        ("admin.keys_of", "code"): tenant.manufacturer.code,
        ("admin.seal_image", "code"): tenant.manufacturer.code,
    }


@dataclass(frozen=True)
class Page:
    endpoint: str
    path: str
    names_object: bool  # its URL names one of the tenant's objects


def pages_about(app: Flask, tenant: Tenant) -> list[Page]:
    """Every UI GET page, its parameters filled with ``tenant``'s objects."""
    values = fill_values(tenant)
    adapter = app.url_map.bind("localhost")
    pages, unfillable = [], []
    for rule in ui_get_rules(app):
        arguments: dict[str, Any] = {}
        names_object = False
        for name in sorted(rule.arguments):
            if name in NEUTRAL_VALUES:
                arguments[name] = NEUTRAL_VALUES[name]
            elif (rule.endpoint, name) in values:
                arguments[name], names_object = values[(rule.endpoint, name)], True
            elif ("*", name) in values:
                arguments[name], names_object = values[("*", name)], True
            else:
                unfillable.append(f"{rule.endpoint} ({rule.rule}): parameter <{name}>")
        if not unfillable:
            pages.append(Page(rule.endpoint, adapter.build(rule.endpoint, arguments), names_object))
    assert not unfillable, (
        "these pages have URL parameters the tenancy test cannot fill; add a value naming one of "
        "the tenant's objects to fill_values() in tests/web/ui/test_tenancy_pages.py:\n  " + "\n  ".join(unfillable)
    )
    return pages


def leaked(html: str, secrets: set[str]) -> list[str]:
    return sorted(s for s in secrets if s in html)


def test_every_page_of_the_issue_exists(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in ui_get_rules(app)}
    missing = sorted(EXPECTED_ENDPOINTS - endpoints)
    assert not missing, f"pages named in the issue that do not exist (no GET route): {missing}"


def _anonymous_problems(app: Flask, pages: list[Page]) -> list[str]:
    client = app.test_client()
    problems = []
    for page in pages:
        answer = client.get(page.path)
        location = answer.headers.get("Location", "")
        if answer.status_code != 302 or "/login" not in location:
            problems.append(f"anonymous: {page.endpoint} {page.path} answered {answer.status_code} {location}")
    return problems


def _visitor_problems(visitor: Any, who: str, pages: list[Page], secrets: set[str]) -> list[str]:
    """Pages about A's objects answer 403/404; no page shows any of A's strings."""
    problems = []
    opened = 0
    for page in pages:
        answer = visitor.get(page.path, follow_redirects=True)
        where = f"{who}: {page.endpoint} {page.path}"
        if "/login" in answer.request.path:
            problems.append(f"{where} signed the user out (ended on {answer.request.path})")
            continue
        if page.names_object and answer.status_code not in (403, 404):
            problems.append(f"{where} answered {answer.status_code} about tenant A's object (expected 403/404)")
        elif answer.status_code not in (200, 403, 404):
            problems.append(f"{where} answered {answer.status_code}")
        opened += answer.status_code == 200
        # A page may repeat what its URL says (the language form's "next", "no letter X"): the
        # visitor typed that; anything more of A is a leak.
        echoed = {s for s in secrets if s.strip('"') in page.path}
        found = leaked(answer.get_data().decode("utf-8", errors="replace"), secrets - echoed)
        if found:
            problems.append(f"{where} ({answer.status_code}) shows tenant A's {found}")
    if not opened:
        problems.append(f"{who} could open no page at all")
    return problems


def _own_data_problems(app: Flask, tenants: Tenants, make_browser: Any) -> list[str]:
    """The other side of the check: B's lists are not empty pages, they list B's objects (so
    "nothing of A" is not "nothing at all"), and the platform administrator, who may see every
    tenant, does see A (so the string check is one that can fail)."""
    problems = []
    own = {p.endpoint: p.path for p in pages_about(app, tenants.b)}
    b = tenants.b
    expectations = [
        ("exporter", "requests_ui.index", f'/requests/{b.request_ids[-1]}"'),
        ("exporter", "letters_ui.index", b.letter_numbers[0]),
        ("aftersales", "requests_ui.index", f'/requests/{b.request_ids[-1]}"'),
        ("aftersales", "letters_ui.index", b.letter_numbers[0]),
        ("aftersales", "registry.outlets", b.outlet_codes[0]),
        ("manufacturer_admin", "admin.users", b.users["aftersales"].email),
    ]
    visitors = {who: make_browser(b.users[who]) for who in ("exporter", "aftersales", "manufacturer_admin")}
    for who, endpoint, expected in expectations:
        if endpoint not in own:
            problems.append(f"the page {endpoint} does not exist")
            continue
        answer = visitors[who].get(own[endpoint], follow_redirects=True)
        if answer.status_code != 200 or expected not in answer.get_data().decode("utf-8", errors="replace"):
            problems.append(f"{who} of tenant B: {endpoint} ({answer.status_code}) does not show its own {expected}")
    admin = make_browser(tenants.platform_admin)
    for endpoint in ("requests_ui.index", "admin.manufacturers"):
        if endpoint not in own:
            continue  # reported above or by test_every_page_of_the_issue_exists
        answer = admin.get(own[endpoint], follow_redirects=True)
        if not leaked(answer.get_data().decode("utf-8", errors="replace"), tenants.a.secrets):
            problems.append(f"platform administrator: {endpoint} ({answer.status_code}) shows nothing of tenant A")
    return problems


def test_no_page_shows_another_tenants_data(app: Flask, tenants: Tenants, make_browser: Any) -> None:
    """Every UI page, asked for by an anonymous visitor, by each user of tenant B and by a
    reviewer (who belongs to no tenant), with tenant A's objects in the URL. One test (seeding two
    tenants with sealed letters is the slow part); every problem found is listed."""
    pages = pages_about(app, tenants.a)
    problems = _anonymous_problems(app, pages)
    visitors = {who: tenants.b.users[who] for who in ("exporter", "aftersales", "manufacturer_admin")}
    visitors["reviewer"] = tenants.reviewer
    for who, user in visitors.items():
        problems += _visitor_problems(make_browser(user), f"{who} of tenant B", pages, tenants.a.secrets)
    problems += _own_data_problems(app, tenants, make_browser)
    assert not problems, f"{len(problems)} problem(s) with tenancy on the pages:\n  " + "\n  ".join(problems)
