"""Every endpoint of the application refuses whoever may not use it: another tenant, the wrong
role, nobody.

The calls are generated from ``app.url_map``: every rule, every method it serves (GET, POST,
PATCH, PUT, DELETE; HEAD and OPTIONS follow GET and Flask), and for each path the methods no rule
serves (405). A rule's URL parameters name tenant A's objects (``url_values``); a write sends a
plausible body (``BODIES``) — the one A's own user succeeds with (proved by
``test_the_owner_succeeds_with_the_same_calls``), so a 422 cannot stand in for a missing access
check. The callers are tenant B's users of every role, a reviewer (who belongs to no tenant),
nobody, a bad token, a revoked token, a deactivated user's token and session, and A's own session
without a token on the API and A's own token without a session on the pages (the API never reads
cookies, the pages never read tokens).

- nobody (and every invalid credential): 401 from the API, a redirect to the login page (or
  401) from a page;
- a rule naming one of A's objects: 403 or 404 to every caller, and the same status and error
  code as for an object that does not exist (``ghost_of``): no answer tells that A has it;
- a rule naming no object: 403 to a role ``ROLES`` does not list for it; a role it lists may use
  it (on its own tenant), and its answer shows nothing of A;
- no answer to these callers contains any of A's identifying strings (numbers, codes, VINs,
  names, e-mails, ids in links), and after all the calls no row of A's changed (every table,
  rows found from A's manufacturer and exporters through foreign keys);
- every answer under /api/ is JSON, errors and 405 included; HEAD answers as GET, OPTIONS runs
  no view;
- bodies that name A's objects in a rule about none (correcting A's letter, an outlet under A's
  code, a user "for" A's manufacturer) reach nothing of A
  (``test_bodies_naming_tenant_a_reach_nothing_of_it``).

Public endpoints are on ``PUBLIC`` with the reason each may answer anyone. A rule that is on no
table (``ROLES``, ``PUBLIC``), a parameter ``url_values`` cannot fill, or a write without a
body in ``BODIES`` fails the test: a new endpoint is enumerated and fails loudly until someone
decides who may call it. Platform administrators, cross-tenant by design, are checked on their
own (``test_platform_administrator_...``), and so is CSRF on every POST page (here turned off so
the access control is what is tested).

The world (two tenants with sealed letters) is built once per module and backend; each test runs
in a savepoint rolled back after it, and the owner and platform-administrator calls each in one
of their own.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import product
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.engine import Engine
from werkzeug.routing import Rule

from issuer import clock, create_app
from issuer.config import Settings
from issuer.models import User
from issuer.services import accounts, declarations
from tests import factories
from tests.conftest import TODAY, _BoundDatabase
from tests.security.access_world import (
    APPLYING_ON,
    REGISTERED_ON,
    TENANT_ROLES,
    Person,
    Tenant,
    World,
    build_world,
    changes_of,
    declaration,
    png,
    snapshot,
)

# One worker runs the module, so the world is built once per backend.
pytestmark = pytest.mark.xdist_group("endpoint_access")

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
EVERYONE = ("exporter", "aftersales", "manufacturer_admin", "reviewer", "platform_admin")
READERS = ("exporter", "aftersales", "manufacturer_admin", "platform_admin")
STAFF = ("aftersales", "manufacturer_admin")
ADMINS = ("manufacturer_admin", "platform_admin")
PLATFORM = ("platform_admin",)

# Who may use each endpoint (on their own tenant's objects): README "The web application" and
# "HTTP API". A new endpoint fails the test until it is listed here or on PUBLIC.
ROLES: dict[str, tuple[str, ...]] = {
    "pages.home": EVERYONE,
    "pages.logout": EVERYONE,
    "account.index": EVERYONE,
    "account.language": EVERYONE,
    "account.password": EVERYONE,
    "account.token_create": EVERYONE,
    "account.token_revoke": EVERYONE,
    "precheck.index": ("exporter",),
    "precheck.submit": ("exporter",),
    "precheck.template": ("exporter",),
    "requests_ui.index": READERS,
    "requests_ui.detail": READERS,
    "requests_ui.decide": ("aftersales",),
    "requests_ui.complete": ("aftersales",),
    "letters_ui.index": READERS,
    "letters_ui.detail": READERS,
    "letters_ui.pdf": READERS,
    "letters_ui.revoke": STAFF,
    "registry.outlets": STAFF,
    "registry.outlet_new": STAFF,
    "registry.outlet_edit": STAFF,
    "registry.outlet_active": STAFF,
    "registry.outlets_import": STAFF,
    "registry.vehicles": STAFF,
    "registry.import_job": STAFF,
    "registry.import_job_status": STAFF,
    "registry.blocks": STAFF,
    "registry.block_lift": STAFF,
    "registry.coverage": (*STAFF, "platform_admin"),
    "admin.manufacturers": PLATFORM,
    "admin.manufacturer_new": PLATFORM,
    "admin.manufacturer_edit": PLATFORM,
    "admin.exporters": PLATFORM,
    "admin.exporter_new": PLATFORM,
    "admin.users": ADMINS,
    "admin.user_new": ADMINS,
    "admin.user_edit": ADMINS,
    "admin.user_active": ADMINS,
    "admin.user_password": ADMINS,
    "admin.keys": ADMINS,
    "admin.keys_of": ADMINS,
    "admin.key_change": ADMINS,
    "admin.key_import": ADMINS,
    "admin.seal_image_upload": ADMINS,
    "admin.seal_image": ADMINS,
    "outbox.index": ADMINS,
    "outbox.message": ADMINS,
    "outbox.retry": ADMINS,
    "audit_ui.index": ADMINS,
    "api.precheck": ("exporter",),
    "api.submit_request": ("exporter",),
    "api.list_requests": READERS,
    "api.get_request": READERS,
    "letters_api.decide": ("aftersales",),
    "letters_api.list_letters": READERS,
    "letters_api.get_letter": READERS,
    "letters_api.letter_pdf": READERS,
    "letters_api.revoke": STAFF,
    "letters_api.job_status": READERS,
    "api.list_outlets": STAFF,
    "api.create_outlet": STAFF,
    "api.get_outlet": STAFF,
    "api.update_outlet": STAFF,
}


@dataclass(frozen=True)
class Public:
    reason: str
    # Kinds of a tenant's strings (access_world.Tenant.secrets) it publishes by design.
    publishes: tuple[str, ...] = ()


# Endpoints anyone may call, each with its reason.
PUBLIC: dict[str, Public] = {
    "public.letter_keys": Public(
        "every seal key ever used, with its certificate, so anyone can check a letter offline",
        publishes=("manufacturer", "seal key"),
    ),
    "api.openapi_document": Public("the description of the API; it names no tenant's data"),
    "verify_api.verify_by_code_json": Public(
        "anyone holding a letter checks it by number and code; without the code: 'no letter', as for any number"
    ),
    "verify_api.verify_pdf_json": Public("anyone holding a letter checks its PDF; it reads only the file sent"),
    "verify.verify_form": Public("the verification form (reviewers, customs, anyone)"),
    "verify.verify_page": Public("the page the letter's QR code opens; without the code: 'no letter'"),
    "verify.verify_upload_page": Public("checking an uploaded PDF, as the JSON twin"),
    "pages.login": Public("signing in"),
    "pages.set_language": Public("a visitor chooses the language of the pages"),
    "static": Public("the stylesheet and scripts"),
    "health.healthz": Public("liveness for the load balancer: answers {'status': 'ok'} and touches nothing"),
    "health.readyz": Public("readiness for the load balancer: names its checks with ok/failed, no details"),
}

# POST pages CSRFProtect does not guard, each with its reason.
CSRF_EXEMPT = {
    "verify.verify_upload_page": "checking a letter changes nothing and needs no account (issuer/__init__.py)",
}

# Owner calls that are refused for what they ask, not for who asks (the access check passed):
# (endpoint, last part of the path) -> (status, why).
OWNER_REFUSALS: dict[tuple[str, str], tuple[int, str]] = {
    ("admin.key_change", "generate"): (
        409,
        "A has its first key already; generating is for a manufacturer without one",
    ),
}

# Endpoints whose object is one user's own, not a tenant's: only that user reaches it (the
# platform administrator gets 404 too). The owner is the user of this role of tenant A.
PERSONAL = {"account.token_revoke": "aftersales"}


# -- the URL parameters ------------------------------------------------------------------------


def url_values(t: Tenant) -> dict[tuple[str, str], list[Any]]:
    """The values of each URL parameter, naming ``t``'s objects: by (endpoint, parameter), or by
    ("*", parameter) for every endpoint. A parameter named here makes the rule one "about an
    object". Add a line for a new parameter; an ambiguous name (``code``) is given per endpoint."""
    every_request = [t.requests[name] for name in ("issued", "revoked", "rejected", "waiting")]
    values: dict[tuple[str, str], list[Any]] = {
        ("*", "request_id"): every_request,
        ("letters_api.decide", "request_id"): [t.requests["waiting"]],
        ("requests_ui.decide", "request_id"): [t.requests["waiting"]],
        ("requests_ui.complete", "request_id"): [t.requests["issued"]],
        ("*", "number"): [t.letters["valid"], t.letters["revoked"]],
        ("letters_api.revoke", "number"): [t.letters["valid"]],
        ("letters_ui.revoke", "number"): [t.letters["valid"]],
        ("*", "job_id"): [t.import_job_id],
        ("letters_api.job_status", "job_id"): [t.issuance_job_id],
        ("*", "user_id"): [t.users["aftersales"].id],
        ("*", "message_id"): [t.failed_message_id],
        ("*", "token_id"): [t.token_ids["aftersales"]],
        ("*", "exporter_code"): [t.blocked_exporter.code],
    }
    for endpoint in ("api.get_outlet", "api.update_outlet", "registry.outlet_edit", "registry.outlet_active"):
        values[(endpoint, "code")] = [t.outlet_codes[0]]
    for endpoint in (
        "admin.manufacturer_edit",
        "admin.keys_of",
        "admin.key_change",
        "admin.key_import",
        "admin.seal_image_upload",
        "admin.seal_image",
    ):
        values[(endpoint, "code")] = [t.manufacturer.code]
    return values


# Parameters filled from url_values() that still leave the rule working on the caller's own
# data: an exporter is no tenant's, and lifting names it on the caller's own negative list (where
# A's block is not found: 409 "not on the list"; that A's block stays is checked with the rows).
OWN_DATA_PARAMETERS = {("registry.block_lift", "exporter_code")}

# Parameters that name no tenant's object.
NEUTRAL: dict[tuple[str, str], list[str]] = {
    ("precheck.template", "fmt"): ["csv", "xlsx"],
    ("admin.key_change", "change"): ["generate", "rotate"],
    ("admin.user_active", "change"): ["deactivate", "reactivate"],
    ("static", "filename"): ["css/app.css"],
}


def query_values(t: Tenant) -> dict[str, list[dict[str, str]]]:
    """Query strings a GET rule is also called with: filters naming ``t``'s objects, and lists
    asked for in full. The URL map does not know them; add a line for a new filter."""
    return {
        "admin.keys": [{"manufacturer": t.manufacturer.code}],
        "registry.coverage": [{"manufacturer": t.manufacturer.code, "period": "all"}],
        "audit_ui.index": [
            {"object_type": "letter", "object_id": t.letters["valid"]},
            {"object_type": "request", "object_id": str(t.requests["issued"])},
            {"object_type": "manufacturer", "object_id": t.manufacturer.code},
        ],
        "requests_ui.index": [{"status": "all"}],
        "letters_ui.index": [{"status": "all"}],
        "outbox.index": [{"state": "all"}],
        "registry.outlets": [{"country": "KZ", "active": "all"}],
        "api.list_requests": [{"limit": "500"}],
        "letters_api.list_letters": [{"limit": "500"}],
        "api.list_outlets": [{"country": "KZ"}],
        "verify.verify_form": [{"number": t.letters["valid"]}],
    }


# -- the bodies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    json: dict[str, Any] | None = None
    form: dict[str, Any] | None = None


NOT_A_LETTER = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _vehicle(vin: str) -> dict[str, Any]:
    return {
        "vin": vin,
        "brand": "Example",
        "model": "E1",
        "registration_date": REGISTERED_ON.isoformat(),
        "destination": "KZ",
    }


def _outlet_form(**extra: str) -> dict[str, Any]:
    return {
        "country": "KZ",
        "name": "Probe Service Centre",
        "provider": "Probe Aftercare LLP",
        "address": "1 Probe Street",
        "city": "Astana",
        "phone": "+7 700 000 0001",
        "email": "probe@outlet.test",
        "brands": "",
        "valid_from": "2025-01-01",
        "valid_to": "",
        "active": "y",
        **extra,
    }


def _file(content: bytes, name: str) -> tuple[io.BytesIO, str]:
    return io.BytesIO(content), name


def _outlets_csv(t: Tenant) -> bytes:
    header = "code,country,name,provider,address,city,phone,email,brands,valid_from,valid_to\n"
    return (
        header + f"{t.key.upper()}-PROBE-IMPORTED,KZ,Probe Imported,Probe LLP,2 Probe St,Astana,,,,2025-01-01,\n"
    ).encode()


def _key_import(t: Tenant) -> dict[str, Any]:
    key_pem, chain_pem = factories.ca_issued(t.uscc)
    return {"key": _file(key_pem, "seal.key"), "certificate": _file(chain_pem, "chain.pem")}


# The body of every write, for tenant ``t`` (the tenant whose objects the URL names, or the
# caller's own). Fresh each time: uploads are streams. A write missing here fails the test.
BODIES: dict[tuple[str, str], Callable[[Tenant], Body]] = {
    ("api.precheck", "POST"): lambda t: Body(
        json={
            "manufacturer": t.manufacturer.code,
            "application_date": APPLYING_ON.isoformat(),
            "vehicles": [_vehicle(t.spare_vins[0])],
        }
    ),
    ("api.submit_request", "POST"): lambda t: Body(
        json={
            "manufacturer": t.manufacturer.code,
            "application_date": APPLYING_ON.isoformat(),
            "reference": "PROBE-REQUEST",
            "vehicles": [_vehicle(t.spare_vins[0])],
        }
    ),
    ("letters_api.decide", "POST"): lambda t: Body(json={"approve": "all_eligible"}),
    ("letters_api.revoke", "POST"): lambda t: Body(json={"reason": "probe revocation"}),
    ("api.create_outlet", "POST"): lambda t: Body(
        json={
            "code": "PROBE-OUTLET",
            "country": "KZ",
            "name": "Probe Service Centre",
            "provider": "Probe Aftercare LLP",
            "address": "1 Probe Street",
            "valid_from": "2025-01-01",
        }
    ),
    ("api.update_outlet", "PATCH"): lambda t: Body(json={"name": "Probe Renamed Centre"}),
    ("verify_api.verify_pdf_json", "POST"): lambda t: Body(form={"file": _file(NOT_A_LETTER, "letter.pdf")}),
    ("verify.verify_upload_page", "POST"): lambda t: Body(form={"file": _file(NOT_A_LETTER, "letter.pdf")}),
    ("pages.login", "POST"): lambda t: Body(form={"email": "nobody@probe.test", "password": "not-the-password"}),
    ("pages.logout", "POST"): lambda t: Body(form={}),
    ("pages.set_language", "POST"): lambda t: Body(form={"language": "en", "next": "/"}),
    ("account.language", "POST"): lambda t: Body(form={"locale": "en"}),
    ("account.password", "POST"): lambda t: Body(
        form={"current_password": factories.PASSWORD, "new_password": "probe-new-password-1"}
    ),
    ("account.token_create", "POST"): lambda t: Body(form={"name": "probe token"}),
    ("account.token_revoke", "POST"): lambda t: Body(form={}),
    ("precheck.index", "POST"): lambda t: Body(
        form={
            "application_date": APPLYING_ON.isoformat(),
            "reference": "PROBE",
            "vehicles": "vin\tbrand\tmodel\tregistration_date\tdestination\n"
            f"{t.spare_vins[0]}\tExample\tE1\t{REGISTERED_ON.isoformat()}\tKZ",
        }
    ),
    ("precheck.submit", "POST"): lambda t: Body(
        form={
            "manufacturer": t.manufacturer.code,
            "application_date": APPLYING_ON.isoformat(),
            "reference": "PROBE",
            "vehicles": declarations.encode([declaration(t.spare_vins[0])]),
        }
    ),
    ("requests_ui.decide", "POST"): lambda t: Body(form={"action": "all_eligible"}),
    ("requests_ui.complete", "POST"): lambda t: Body(form={}),
    ("letters_ui.revoke", "POST"): lambda t: Body(form={"reason": "probe revocation", "confirm": "y"}),
    ("registry.outlet_new", "POST"): lambda t: Body(form=_outlet_form(code="PROBE-OUTLET-WEB")),
    ("registry.outlet_edit", "POST"): lambda t: Body(form=_outlet_form()),
    ("registry.outlet_active", "POST"): lambda t: Body(form={"active": "0"}),
    ("registry.outlets_import", "POST"): lambda t: Body(form={"file": _file(_outlets_csv(t), "outlets.csv")}),
    ("registry.vehicles", "POST"): lambda t: Body(
        form={
            "file": _file(
                f"vin,brand,model,production_date\n{t.spare_vins[1]},Example,E1,2025-05-01\n".encode(), "registry.csv"
            )
        }
    ),
    ("registry.blocks", "POST"): lambda t: Body(form={"exporter": t.spare_exporter.code, "reason": "probe block"}),
    ("registry.block_lift", "POST"): lambda t: Body(form={"reason": "probe lift"}),
    ("admin.manufacturer_new", "POST"): lambda t: Body(
        form={
            "code": "PROBEMOTOR",
            "name": "探针汽车制造有限公司",
            "name_en": "Probe Motor Co., Ltd.",
            "uscc": factories.uscc(990_001),
            "type": "vehicle_manufacturer",
            "wmis": "LFP",
            "letter_validity_days": "180",
        }
    ),
    ("admin.manufacturer_edit", "POST"): lambda t: Body(
        form={
            "name": f"{t.key}甲乙汽车制造有限公司",
            "name_en": f"{t.key.title()} Motor Works (Probe) Co., Ltd.",
            "type": "vehicle_manufacturer",
            "wmis": t.wmi,
            "letter_validity_days": "180",
        }
    ),
    ("admin.exporter_new", "POST"): lambda t: Body(
        form={"code": "PROBEEXPORT", "name": "探针出口有限公司", "name_en": "", "uscc": factories.uscc(990_002)}
    ),
    ("admin.user_new", "POST"): lambda t: Body(
        form={
            "email": f"probe-user@{t.key}-tenant.test",
            "role": "aftersales",
            "password": "probe-password-123",
            "manufacturer": t.manufacturer.code,
            "exporter": "",
        }
    ),
    ("admin.user_edit", "POST"): lambda t: Body(
        form={"role": "manufacturer_admin", "manufacturer": t.manufacturer.code, "exporter": ""}
    ),
    ("admin.user_active", "POST"): lambda t: Body(form={}),
    ("admin.user_password", "POST"): lambda t: Body(form={"password": "probe-password-456"}),
    ("admin.key_change", "POST"): lambda t: Body(form={}),
    ("admin.key_import", "POST"): lambda t: Body(form=_key_import(t)),
    ("admin.seal_image_upload", "POST"): lambda t: Body(form={"image": _file(png(), "seal.png")}),
    ("outbox.retry", "POST"): lambda t: Body(form={}),
    ("audit_ui.index", "POST"): lambda t: Body(form={"verify": "1"}),
}


# -- the calls ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    endpoint: str
    method: str
    path: str
    about_object: bool  # its URL names one of the tenant's objects
    unserved: bool = False  # no rule serves this method on this path: 405

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.endpoint})"


def served_methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def every_rule(app: Flask) -> list[Rule]:
    return sorted(app.url_map.iter_rules(), key=lambda rule: (rule.rule, rule.endpoint))


def calls_about(app: Flask, t: Tenant) -> tuple[list[Call], list[str]]:
    """Every rule × method × filled URL, and the 405 calls of each path; and the problems that
    leave a rule untested (an unknown endpoint, a parameter or body nobody filled)."""
    values, queries = url_values(t), query_values(t)
    adapter = app.url_map.bind("localhost")
    calls: list[Call] = []
    problems: list[str] = []
    paths: dict[str, str] = {}
    for rule in every_rule(app):
        if rule.endpoint not in ROLES and rule.endpoint not in PUBLIC:
            problems.append(f"{rule.rule} ({rule.endpoint}) is on neither ROLES nor PUBLIC: who may call it?")
            continue
        choices: dict[str, list[Any]] = {}
        about_object = False
        for name in sorted(rule.arguments):
            for table in (NEUTRAL, values):
                found = table.get((rule.endpoint, name)) or table.get(("*", name))
                if found:
                    choices[name] = found
                    about_object = about_object or (
                        table is values and (rule.endpoint, name) not in OWN_DATA_PARAMETERS
                    )
                    break
            else:
                problems.append(f"{rule.rule} ({rule.endpoint}): nothing fills <{name}>; add it to url_values()")
        if len(choices) < len(rule.arguments):
            continue
        names = sorted(choices)
        for combination in product(*(choices[n] for n in names)):
            path = adapter.build(rule.endpoint, dict(zip(names, combination, strict=True)))
            paths.setdefault(path, rule.endpoint)
            for method in served_methods(rule):
                if method != "GET" and (rule.endpoint, method) not in BODIES:
                    problems.append(f"{method} {rule.rule} ({rule.endpoint}) has no body in BODIES")
                    continue
                calls.append(Call(rule.endpoint, method, path, about_object))
                if method == "GET":
                    calls += [
                        Call(rule.endpoint, method, f"{path}?{urlencode(query)}", about_object)
                        for query in queries.get(rule.endpoint, [])
                    ]
    for path, endpoint in paths.items():
        for method in sorted(set(METHODS) - set(adapter.allowed_methods(path))):
            calls.append(Call(endpoint, method, path, about_object=False, unserved=True))
    problems += [
        f"query_values() names {e}, which is no endpoint" for e in sorted(set(queries) - set(app.view_functions))
    ]
    return calls, sorted(set(problems))


# -- calling -----------------------------------------------------------------------------------


@dataclass
class Caller:
    name: str
    client: FlaskClient
    token: str | None = None
    role: str | None = None  # None: not a valid user on this channel
    channel: str = "both"  # "api", "pages" or "both": the rules this caller is tried on

    def may_try(self, call: Call) -> bool:
        return self.channel == "both" or (self.channel == "api") == call.is_api


def send(caller: Caller, call: Call, tenant: Tenant) -> Any:
    body = BODIES[(call.endpoint, call.method)](tenant) if (call.endpoint, call.method) in BODIES else Body()
    headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
    if call.unserved:
        body = Body(json={}) if call.is_api else Body(form={})
    if call.method == "GET":
        body = Body()
    answer = caller.client.open(call.path, method=call.method, json=body.json, data=body.form, headers=headers)
    answer.get_data()  # read, then close: a file's answer (static, PDF) holds the file open
    answer.close()
    return answer


def sent_strings(call: Call, tenant: Tenant) -> str:
    """What the caller itself sent (a page may repeat it: that is no leak)."""
    if call.method == "GET" or (call.endpoint, call.method) not in BODIES:
        return call.path
    body = BODIES[(call.endpoint, call.method)](tenant)
    return call.path + json.dumps(body.json or {}) + repr(body.form or {})


def to_login(answer: Any) -> bool:
    return answer.status_code in (302, 303) and urlsplit(answer.headers.get("Location", "")).path == "/login"


def answer_problems(call: Call, answer: Any, *, secrets: set[str], sent: str) -> list[str]:
    """What is wrong with an answer whatever its status: HTML from the API, a stack trace, A's data."""
    problems = []
    text = answer.get_data().decode("utf-8", errors="replace")
    if call.is_api and answer.mimetype != "application/json":
        problems.append(f"answered {answer.status_code} as {answer.mimetype}, not JSON")
    if "Traceback (most recent call last)" in text:
        problems.append("shows a stack trace")
    found = sorted(s for s in secrets if s in text and s.strip('"') not in sent)
    if found:
        problems.append(f"({answer.status_code}) shows tenant A's {found}")
    return problems


def expected(call: Call, caller: Caller) -> tuple[Callable[[Any], bool], str]:
    """The answer the access rules ask for, and how to say it."""
    if call.unserved:
        return (lambda a: a.status_code == 405), "405"
    if call.endpoint in PUBLIC:
        return (lambda a: a.status_code < 500), "any answer but a server error (public)"
    if caller.role is None:
        if call.is_api:
            return (lambda a: a.status_code == 401), "401"
        return (lambda a: to_login(a) or a.status_code == 401), "a redirect to /login or 401"
    if call.about_object:
        return (lambda a: a.status_code in (403, 404)), "403 or 404 (tenant A's object)"
    if call.endpoint in SIGNS_OUT and caller.role in ROLES[call.endpoint]:
        return to_login, "a redirect to /login (signed out)"
    if caller.role in ROLES[call.endpoint]:
        return (
            lambda a: a.status_code < 500 and a.status_code not in (401, 403) and not to_login(a)
        ), "an answer to an allowed role (not 401/403/5xx, not signed out)"
    return (lambda a: a.status_code == 403), f"403 (not a role of {ROLES[call.endpoint]})"


# Calls that end or renew the caller's session go last, in this order.
LAST = ("account.password", "pages.logout")
SIGNS_OUT = {"pages.logout"}  # its answer to the user it signs out is the login page


def in_calling_order(calls: list[Call]) -> list[Call]:
    return sorted(calls, key=lambda c: LAST.index(c.endpoint) + 1 if c.endpoint in LAST else 0)


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(engine: Engine, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two tenants with sealed letters, built once per backend, in a transaction rolled back at
    the end of the module."""
    folder = tmp_path_factory.mktemp("access")
    settings = Settings(
        database_url=database_url,
        secret_key="test-secret-access-world",
        keys_dir=folder / "keys",
        key_passphrase="test-passphrase",
        public_url="http://issuer.test",
        ratelimit_enabled=False,
    )
    connection = engine.connect()
    transaction = connection.begin()
    with pytest.MonkeyPatch.context() as patch:
        # Users and sign-ins by the dozen: the default Argon2 cost would take seconds.
        patch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        try:
            app = create_app(settings, database=_BoundDatabase(connection))  # type: ignore[arg-type]
            app.config.update(TESTING=True, WTF_CSRF_ENABLED=False, ISSUER_IMPORTS_DIR=str(folder / "imports"))
            with clock.frozen(TODAY):
                built = build_world(app, connection)
            yield built
        finally:
            transaction.rollback()
            connection.close()


@pytest.fixture
def fresh(world: World) -> Iterator[World]:
    """The world as built: this test's changes are rolled back after it."""
    savepoint = world.connection.begin_nested()
    try:
        yield world
    finally:
        savepoint.rollback()
        world.app.config["WTF_CSRF_ENABLED"] = False


class Isolated:
    """Runs a block in a savepoint of its own, rolled back after it."""

    def __init__(self, world: World) -> None:
        self.world = world

    def __enter__(self) -> None:
        self.savepoint = self.world.connection.begin_nested()

    def __exit__(self, *_exc: object) -> None:
        self.savepoint.rollback()


def _callers(world: World) -> list[Caller]:
    """Everyone who must be refused A's data, signed in now (the sign-ins are recorded before
    the test's snapshot is taken)."""
    a, b = world.a, world.b
    callers = [
        Caller(f"tenant B's {role}", world.sign_in(person), b.tokens[role], role) for role, person in b.users.items()
    ]
    callers.append(Caller("a reviewer", world.sign_in(world.reviewer), world.reviewer_token, "reviewer"))
    callers.append(Caller("nobody", world.client()))
    callers.append(Caller("a bad token", world.client(), accounts.TOKEN_PREFIX + "x" * 43, channel="api"))
    callers.append(Caller("tenant A's revoked token", world.client(), a.revoked_token, channel="api"))
    callers.append(Caller("tenant A's deactivated user's token", world.client(), a.deactivated_token, channel="api"))
    callers.append(Caller("tenant A's session without a token", world.sign_in(a.users["aftersales"]), channel="api"))
    callers.append(
        Caller("tenant A's token without a session", world.client(), a.tokens["aftersales"], channel="pages")
    )
    callers.append(Caller("tenant A's deactivated user's session", _deactivated_session(world), channel="pages"))
    return callers


def _deactivated_session(world: World) -> FlaskClient:
    """A session of A's former after-sales user, signed in while the account was active."""
    person = world.a.deactivated
    with world.session() as session:
        session.execute(update(User).where(User.id == person.id).values(active=True))
        session.commit()
        client = world.sign_in(person)
        session.execute(update(User).where(User.id == person.id).values(active=False))
        session.commit()
    return client


# -- the tests ---------------------------------------------------------------------------------


def test_every_rule_is_enumerated_and_fillable(world: World) -> None:
    """Every rule is on ROLES or PUBLIC, every URL parameter is filled, every write has a body;
    and the tables name no endpoint that is gone."""
    calls, problems = calls_about(world.app, world.a)
    endpoints = {rule.endpoint for rule in world.app.url_map.iter_rules()}
    problems += [f"ROLES names {e}, which is no endpoint" for e in sorted(set(ROLES) - endpoints)]
    problems += [f"PUBLIC names {e}, which is no endpoint" for e in sorted(set(PUBLIC) - endpoints)]
    problems += [f"BODIES names {e} {m}, which is no route" for e, m in sorted(BODIES) if e not in endpoints]
    problems += [f"{e} is on both ROLES and PUBLIC" for e in sorted(set(ROLES) & set(PUBLIC))]
    assert calls
    assert not problems, "\n  ".join(["the access test cannot cover every rule:", *problems])


# HEAD and OPTIONS follow from GET and from Flask; they are tried by these callers.
IMPLIED_METHOD_CALLERS = ("nobody", "tenant B's manufacturer_admin")


def _implied_methods_problems(caller: Caller, call: Call, get: Any) -> list[str]:
    """HEAD answers as GET did, without a body; OPTIONS runs no view: it lists the methods."""
    headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
    head = caller.client.open(call.path, method="HEAD", headers=headers)
    options = caller.client.open(call.path, method="OPTIONS", headers=headers)
    problems = []
    if head.status_code != get.status_code or head.get_data():
        problems.append(
            f"HEAD {call.path} answered {head.status_code} with {len(head.get_data())} bytes (GET: {get.status_code})"
        )
    if options.status_code != 200 or options.get_data() or "GET" not in options.headers.get("Allow", ""):
        problems.append(f"OPTIONS {call.path} answered {options.status_code} {options.get_data()[:80]!r}")
    head.close()
    options.close()
    return problems


def _error_code(answer: Any) -> str:
    body = answer.get_json(silent=True) if answer.mimetype == "application/json" else None
    return str(body["error"].get("code", "")) if isinstance(body, dict) and isinstance(body.get("error"), dict) else ""


def ghost_of(t: Tenant) -> Tenant:
    """``t`` with every object the URLs name replaced by one that does not exist."""
    none = 2_000_000_000
    return replace(
        t,
        manufacturer=replace(t.manufacturer, code="GHOSTMOTOR"),
        requests={name: none + n for n, name in enumerate(t.requests)},
        letters={name: f"{t.manufacturer.code}-2026-99999{n}" for n, name in enumerate(t.letters)},
        import_job_id=none,
        users={role: replace(person, id=none) for role, person in t.users.items()},
        failed_message_id=none,
        token_ids=dict.fromkeys(t.token_ids, none),
        outlet_codes=[f"GHOST-OUTLET-{n}" for n, _ in enumerate(t.outlet_codes)],
    )


def test_no_endpoint_answers_another_tenant_the_wrong_role_or_nobody(fresh: World) -> None:
    """Every call, by every caller, answered as the access rules say. And an answer about A's
    object is the answer about an object that does not exist (same status, same error code):
    it tells nobody whether A has it."""
    world = fresh
    calls, problems = calls_about(world.app, world.a)
    ghost = ghost_of(world.a)
    ghost_calls, _ = calls_about(world.app, ghost)
    assert len(ghost_calls) == len(calls)
    nonexistent = dict(zip(calls, ghost_calls, strict=True))
    callers = _callers(world)
    before = snapshot(world.connection)
    secrets = world.a.all_secrets()
    made = 0
    for caller in callers:
        for call in in_calling_order(calls):
            if not caller.may_try(call):
                continue
            if call.unserved and caller.name not in ("nobody", "tenant B's manufacturer_admin"):
                continue  # routing answers 405 before anyone is asked who they are
            # A rule about no object works on the caller's own tenant, so its body names B's.
            tenant = world.a if call.about_object else world.b
            answer = send(caller, call, tenant)
            made += 1
            ok, wanted = expected(call, caller)
            if not ok(answer):
                location = answer.headers.get("Location", "")
                problems.append(f"{caller.name}: {call} answered {answer.status_code} {location} (expected {wanted})")
            if call.method == "GET" and not call.unserved and caller.name in IMPLIED_METHOD_CALLERS:
                problems += [f"{caller.name}: {p}" for p in _implied_methods_problems(caller, call, answer)]
                made += 2
            if call.about_object and caller.role is not None:
                other = send(caller, nonexistent[call], ghost)
                made += 1
                if (answer.status_code, _error_code(answer)) != (other.status_code, _error_code(other)):
                    problems.append(
                        f"{caller.name}: {call} answered {answer.status_code} {_error_code(answer)}, but about an "
                        f"object that does not exist {other.status_code} {_error_code(other)}: it tells A's exists"
                    )
            publishes = PUBLIC[call.endpoint].publishes if call.endpoint in PUBLIC else ()
            shown = world.a.all_secrets(except_kinds=publishes)
            problems += [
                f"{caller.name}: {call} {p}"
                for p in answer_problems(call, answer, secrets=shown, sent=sent_strings(call, tenant))
            ]
    problems += [f"tenant A's data: {p}" for p in changes_of(before, snapshot(world.connection), world.a)]
    rules = list(world.app.url_map.iter_rules())
    pairs = sum(len(served_methods(rule)) for rule in rules)
    print(f"\naccess: {len(rules)} rules, {pairs} rule x method, {len(calls)} calls per caller (URL values, queries,")
    print(f"  405s included), {len(callers)} callers, {made} calls made")
    assert secrets
    assert not problems, f"{len(problems)} access problem(s):\n  " + "\n  ".join(problems)


def _owner(world: World, call: Call) -> Person:
    """The user of tenant A who may make this call (the platform administrator where only they may)."""
    if call.endpoint in PERSONAL:
        return world.a.users[PERSONAL[call.endpoint]]
    for role in ("exporter", "aftersales", "manufacturer_admin"):
        if role in ROLES[call.endpoint]:
            return world.a.users[role]
    if "platform_admin" in ROLES[call.endpoint]:
        return world.platform_admin
    return world.reviewer


def test_the_owner_succeeds_with_the_same_calls(fresh: World) -> None:
    """The calls refused above succeed for tenant A's own user of an allowed role, with the same
    URL and body: the refusals are the access checks', not a body's or a missing object's. (And
    HEAD answers as GET does, OPTIONS lists the methods.)"""
    world = fresh
    calls, problems = calls_about(world.app, world.a)
    for call in calls:
        if call.unserved or call.endpoint in PUBLIC:
            continue
        with Isolated(world):
            owner = _owner(world, call)
            client = world.sign_in(owner)
            token = world.platform_token if owner == world.platform_admin else world.a.tokens.get(owner.role)
            caller = Caller(owner.email, client, token, owner.role)
            answer = send(caller, call, world.a)
            if call.method == "GET":
                problems += [f"{owner.role}: {p}" for p in _implied_methods_problems(caller, call, answer)]
        refusal = OWNER_REFUSALS.get((call.endpoint, call.path.rsplit("/", 1)[-1]))
        if refusal and answer.status_code == refusal[0]:
            continue
        if answer.status_code >= 400 or (to_login(answer) and call.endpoint not in SIGNS_OUT):
            text = answer.get_data(as_text=True)[:300] if answer.mimetype != "application/pdf" else ""
            problems.append(f"{owner.role}: {call} answered {answer.status_code} {text!r}")
        elif call.is_api and answer.mimetype != "application/json" and call.endpoint != "letters_api.letter_pdf":
            problems.append(f"{owner.role}: {call} answered {answer.mimetype}, not JSON")
    assert not problems, f"{len(problems)} call(s) the owner could not make:\n  " + "\n  ".join(problems)


def test_platform_administrator_reaches_every_tenant_where_administration_is_theirs(fresh: World) -> None:
    """The platform administrator is cross-tenant by design: tenant A's objects answer them on
    every endpoint ROLES lists them for, and 403 on the others (a tenant's own work: deciding,
    revoking, the registries, the exporter's pages)."""
    world = fresh
    calls, problems = calls_about(world.app, world.a)
    admin = world.platform_admin
    for call in calls:
        if call.unserved or call.endpoint in PUBLIC:
            continue
        with Isolated(world):
            caller = Caller("platform administrator", world.sign_in(admin), world.platform_token, admin.role)
            answer = send(caller, call, world.a)
        if call.endpoint in PERSONAL:
            if answer.status_code not in (403, 404):
                problems.append(f"{call} answered {answer.status_code} (expected 403/404: another user's own)")
        elif admin.role in ROLES[call.endpoint]:
            signed_out = to_login(answer) and call.endpoint not in SIGNS_OUT
            if answer.status_code >= 500 or answer.status_code in (401, 403, 404) or signed_out:
                problems.append(f"{call} answered {answer.status_code} (expected an answer: theirs to use)")
        elif answer.status_code != 403:
            problems.append(f"{call} answered {answer.status_code} (expected 403: not theirs)")
        if call.is_api and answer.mimetype not in ("application/json", "application/pdf"):
            problems.append(f"{call} answered {answer.mimetype}")
    assert not problems, f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)


def test_every_post_page_refuses_a_form_without_its_csrf_token(fresh: World) -> None:
    """With CSRF protection on, as in production: every POST page (but the exempt ones), sent
    tenant A's plausible form without a token by the user who may send it, answers 400, and to
    nobody a redirect to the login page; nothing in the database changes."""
    world = fresh
    calls, problems = calls_about(world.app, world.a)
    posts = [c for c in calls if c.method != "GET" and not c.is_api and not c.unserved]
    owners = {call: world.sign_in(_owner(world, call)) for call in posts if call.endpoint not in PUBLIC}
    before = snapshot(world.connection)
    world.app.config["WTF_CSRF_ENABLED"] = True
    for call in posts:
        visitors = [("nobody", world.client())]
        if call in owners:
            visitors.append((_owner(world, call).role, owners[call]))
        for who, client in visitors:
            answer = send(Caller(who, client), call, world.a)
            if call.endpoint in CSRF_EXEMPT:
                if answer.status_code >= 500:
                    problems.append(f"{who}: {call} (exempt) answered {answer.status_code}")
            elif not (answer.status_code == 400 or (who == "nobody" and to_login(answer))):
                problems.append(f"{who}: {call} without a CSRF token answered {answer.status_code}")
    world.app.config["WTF_CSRF_ENABLED"] = False
    after = snapshot(world.connection)
    changed = sorted(t for t in before if before[t] != after[t])
    assert posts
    assert not problems, f"{len(problems)} POST page(s) without CSRF protection:\n  " + "\n  ".join(problems)
    assert not changed, f"forms sent without a CSRF token changed the tables {changed}"


def test_bodies_naming_tenant_a_reach_nothing_of_it(fresh: World) -> None:
    """Rules about no object, with bodies that name A's objects, as B's users: correcting A's
    letter is answered exactly as correcting a letter never issued; an outlet under a code A uses
    is B's own (codes are per manufacturer: refusing it would tell that A has one); a user
    created or edited "for" A's manufacturer by B's administrator stays B's. A's strings appear in
    no answer but where the caller sent them, and no row of A changes."""
    world = fresh
    a, b = world.a, world.b
    exporter, aftersales, admin = (
        Caller(f"tenant B's {role}", world.sign_in(b.users[role]), b.tokens[role], role) for role in TENANT_ROLES
    )
    before = snapshot(world.connection)
    problems: list[str] = []
    never_issued = a.letters["valid"].rsplit("-", 1)[0] + "-999999"

    def call(caller: Caller, method: str, path: str, body: Body) -> Any:
        answer = caller.client.open(
            path, method=method, json=body.json, data=body.form, headers={"Authorization": f"Bearer {caller.token}"}
        )
        sent = path + json.dumps(body.json or {}) + repr(body.form or {})
        problems.extend(
            f"{caller.name}: {method} {path} {p}"
            for p in answer_problems(Call("", method, path, False), answer, secrets=a.all_secrets(), sent=sent)
        )
        return answer

    def correcting(number: str) -> Body:
        request = BODIES[("api.submit_request", "POST")](b)
        assert request.json is not None
        return Body(json={**request.json, "supersedes": number})

    def answered(answer: Any, number: str) -> tuple[int, str]:
        return answer.status_code, answer.get_data(as_text=True).replace(number, "<number>")

    asked = answered(call(exporter, "POST", "/api/v1/requests", correcting(a.letters["valid"])), a.letters["valid"])
    unknown = answered(call(exporter, "POST", "/api/v1/requests", correcting(never_issued)), never_issued)
    if asked != unknown or asked[0] != 422:
        problems.append(f"correcting A's letter answered {asked}, a letter never issued {unknown}")
    for number in (a.letters["valid"], never_issued):
        form = BODIES[("precheck.submit", "POST")](b).form
        assert form is not None
        answer = call(exporter, "POST", "/precheck/submit", Body(form={**form, "supersedes": number}))
        if answer.status_code != 422:
            problems.append(f"the precheck page's correction of {number} answered {answer.status_code}")

    outlet = BODIES[("api.create_outlet", "POST")](b).json
    assert outlet is not None
    created = call(aftersales, "POST", "/api/v1/outlets", Body(json={**outlet, "code": a.outlet_codes[0]}))
    if created.status_code != 201:
        problems.append(f"B's outlet under A's code {a.outlet_codes[0]} answered {created.status_code}")
    page = call(aftersales, "POST", "/registry/outlets/new", Body(form=_outlet_form(code=a.outlet_codes[1])))
    if page.status_code != 303:
        problems.append(f"B's outlet page under A's code {a.outlet_codes[1]} answered {page.status_code}")

    for role in ("aftersales", "manufacturer_admin"):
        user = {
            "email": f"probe-{role.replace('_', '-')}@probe.test",
            "role": role,
            "password": "probe-password-123",
            "manufacturer": a.manufacturer.code,
        }
        call(admin, "POST", "/admin/users/new", Body(form=user))
    edit = {"role": "aftersales", "manufacturer": a.manufacturer.code, "exporter": a.exporter.code}
    call(admin, "POST", f"/admin/users/{b.users['aftersales'].id}", Body(form=edit))

    problems += [f"tenant A's data: {p}" for p in changes_of(before, snapshot(world.connection), a)]
    assert not problems, f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)
