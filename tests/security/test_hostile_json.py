"""Hostile JSON, query strings, URL path parameters, headers and codes: every API body (precheck,
requests, decision, revoke, outlets POST and PATCH), every query string and path parameter, and
the forms and commands that create codes, answer a clear 4xx naming the problem (never a 500,
never an HTML page) and leave the database exactly as it was.

How: each test builds a manufacturer ready to issue (seal key, registry, an outlet), an exporter
with a filed request and, where revocation is tried, a sealed letter, all through the real
services. It snapshots every table's full content (every row of every table the migrations
created), throws the hostile inputs from ``tests.security.hostile_samples`` at one surface, and
checks each answer and that the snapshot is unchanged after each input. A valid input is sent
first where it matters, so a test would notice a surface that refuses everything.

Decisions (README, "Hostile input"):

* A body must be sent as ``Content-Type: application/json`` (400 otherwise); duplicate keys,
  ``NaN``/``Infinity``, integers beyond 4,300 digits and lone surrogate escapes (``\\ud800``) are
  refused with 400 — each can make two parsers read one body differently, or cannot be stored.
* Identifiers — VINs, destination and country codes, outlet, manufacturer and exporter codes —
  are ASCII. Look-alikes (Cyrillic А, full-width Ｌ, zero-width characters, combining marks, a
  right-to-left override, letters such as ``ß`` or ``ﬁ`` whose upper case is ASCII) are never
  normalised into the ASCII code and never stored: the precheck, which stores nothing, answers
  them ``VIN_FORMAT`` or ``DESTINATION_INVALID``; a request holding one is refused with 422 naming
  the vehicle; a code is refused where it is created and matches nothing where it is looked up.
  NFKC is not applied: it would turn ``ＫＺ`` into ``KZ`` but also ``²`` into ``2`` and ``ﬁ`` into
  ``fi``, silently changing what was typed; surrounding white space (NBSP included) is stripped.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from issuer.models import Manufacturer
from issuer.services import accounts
from issuer.services.keys import generate_key
from tests import factories
from tests.conftest import TODAY
from tests.security import hostile_samples as samples
from tests.web.conftest import Caller, caller

REGISTERED_ON = (TODAY - dt.timedelta(days=30)).isoformat()
APPLYING_ON = (TODAY + dt.timedelta(days=10)).isoformat()
TEN_MB = 10 * 1024 * 1024


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


# -- what the database holds -------------------------------------------------------------------


def _tables(session: Session) -> list[str]:
    return sorted(t for t in inspect(session.connection()).get_table_names() if t != "alembic_version")


def snapshot(session: Session) -> dict[str, list[str]]:
    """Every row of every table, as text, sorted: equal snapshots mean nothing was written."""
    session.expire_all()
    connection = session.connection()
    return {
        table: sorted(repr(tuple(row)) for row in connection.execute(text(f'SELECT * FROM "{table}"')))  # noqa: S608
        for table in _tables(session)
    }


def row_counts(session: Session) -> dict[str, int]:
    """The row count of every table, in one round trip (cheap enough to take after every input)."""
    tables = _tables(session)
    counts = ", ".join(f'(SELECT count(*) FROM "{t}")' for t in tables)  # noqa: S608
    row = session.connection().execute(text(f"SELECT {counts}")).one()
    return dict(zip(tables, row, strict=True))


def changed_tables(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [t for t in sorted(set(before) | set(after)) if before.get(t) != after.get(t)]


class Unchanged:
    """The database as a test found it: row counts, checked after every hostile input, and the
    full content of every table, checked once at the end (``assert_whole``); the tables in
    ``ignore`` are not compared."""

    def __init__(self, session: Session, *, ignore: tuple[str, ...] = ()) -> None:
        self.session = session
        self.ignore = ignore
        self.counts = self._without(row_counts(session))
        self.content = self._without(snapshot(session))

    def _without(self, tables: dict[str, Any]) -> dict[str, Any]:
        return {table: rows for table, rows in tables.items() if table not in self.ignore}

    def changed(self) -> list[str]:
        return changed_tables(self.counts, self._without(row_counts(self.session)))

    def assert_whole(self) -> None:
        changed = changed_tables(self.content, self._without(snapshot(self.session)))
        assert not changed, f"rows changed in {changed}"


def error_of(response: Any) -> dict[str, Any]:
    """The contract's JSON error: ``{"error": {"code", "message", "details"}}``, no HTML, no trace."""
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:300]
    raw = response.get_data(as_text=True)
    assert "Traceback" not in raw
    assert "<html" not in raw.lower()
    body = response.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str)
    assert error["message"]
    return error  # type: ignore[no-any-return]


class Problems:
    """Collects every failed hostile input of a loop, so one run reports them all."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.tried = 0
        self.inputs = 0

    def check(self, label: str, condition: bool, detail: object = "") -> None:
        self.tried += 1
        if not condition:
            self.found.append(f"{label}: {detail}"[:600])

    def assert_none(self) -> None:
        assert not self.found, f"{len(self.found)} of {self.tried} hostile inputs misbehaved:\n" + "\n".join(self.found)


def expect_refused(
    problems: Problems,
    label: str,
    response: Any,
    statuses: tuple[int, ...],
    *,
    before: Unchanged,
    mentions: str | None = None,
) -> None:
    """The answer is one of ``statuses`` with a JSON error (naming ``mentions`` when given), and
    every table holds as many rows as ``before``."""
    problems.inputs += 1
    status_ok = response.status_code in statuses
    detail: object = f"{response.status_code} {response.get_data(as_text=True)[:300]!r}"
    if status_ok:
        try:
            error = error_of(response)
        except AssertionError as exc:
            status_ok, detail = False, f"not a JSON error: {exc}"
        else:
            if mentions is not None and mentions not in json.dumps(error, ensure_ascii=False):
                status_ok, detail = False, f"the error does not name {mentions!r}: {error}"
    problems.check(label, status_ok, detail)
    changed = before.changed()
    problems.check(f"{label} (database)", not changed, f"changed tables {changed}")


# -- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    client: FlaskClient
    session: Session
    manufacturer: Manufacturer
    exporter: Caller
    aftersales: Caller
    vins: list[str]  # the world's request holds them all
    spare: str  # registered, in no request
    request_id: int

    def precheck_body(self, **changes: Any) -> dict[str, Any]:
        body = {
            "manufacturer": self.manufacturer.code,
            "application_date": APPLYING_ON,
            "reference": "CONTRACT-1",
            "vehicles": [self.vehicle()],
        }
        body.update(changes)
        return body

    def vehicle(self, vin: str | None = None, **changes: Any) -> dict[str, Any]:
        vehicle = {
            "vin": vin or self.vins[0],
            "brand": "Example",
            "model": "E1",
            "registration_date": REGISTERED_ON,
            "export_transfer_date": None,
            "destination": "KZ",
        }
        vehicle.update(changes)
        return vehicle


@pytest.fixture
def world(client: FlaskClient, session: Session, settings: Any) -> World:
    maker = factories.manufacturer(session, "ACME", wmis=("LGX",))
    generate_key(
        session=session, manufacturer_code=maker.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
    )
    # The request holds the ASCII twin of every look-alike VIN; the spare VIN goes in a letter.
    vins = sorted({vin for _id, vin, _hostile in samples.vin_lookalikes()})
    spare = factories.random_vins("LGX", 1, seed=11)[0]
    factories.register(session, maker, [*vins, spare])
    factories.outlet(session, maker, code="KZ-ALMATY", country="KZ")
    factories.outlet(session, maker, code="SA-SUS", country="SA")
    exporter = caller(session, "exporter", exporter=factories.exporter(session, "EXP1"))
    aftersales = caller(session, "aftersales", manufacturer=maker)
    world = World(client, session, maker, exporter, aftersales, vins, spare, request_id=0)
    body = world.precheck_body(vehicles=[world.vehicle(v) for v in vins])
    filed = client.post("/api/v1/requests", json=body, headers=exporter.headers)
    assert filed.status_code == 201, filed.get_data(as_text=True)
    world.request_id = filed.get_json()["id"]
    # Token stamps (last_used_at) are written on a token's first use; do that before any snapshot.
    for who in (exporter, aftersales):
        assert client.get("/api/v1/requests", headers=who.headers).status_code == 200
    return world


@pytest.fixture
def letter_number(world: World) -> str:
    """A sealed letter of ``world`` (its own request, so the world's request stays submitted)."""
    body = world.precheck_body(vehicles=[world.vehicle(world.spare)])
    filed = world.client.post("/api/v1/requests", json=body, headers=world.exporter.headers)
    assert filed.status_code == 201, filed.get_data(as_text=True)
    decided = world.client.post(
        f"/api/v1/requests/{filed.get_json()['id']}/decision",
        json={"approve": "all_eligible"},
        headers=world.aftersales.headers,
    )
    assert decided.status_code == 200, decided.get_data(as_text=True)
    return str(decided.get_json()["letter_number"])


@dataclass(frozen=True)
class Endpoint:
    """A JSON body endpoint: who calls it, and a valid body with the path of each string field."""

    name: str
    method: str
    path: Callable[[World, str], str]
    who: str
    body: Callable[[World], dict[str, Any]]
    # (JSON path as the 422 names it, setter on the body)
    string_fields: tuple[tuple[str, Callable[[dict[str, Any], object], None]], ...]


def _set(*keys: str | int) -> Callable[[dict[str, Any], object], None]:
    def setter(body: dict[str, Any], value: object) -> None:
        target: Any = body
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return setter


_VEHICLE_FIELDS = ("vin", "brand", "model", "registration_date", "export_transfer_date", "destination")
_OUTLET_FIELDS = (
    "country",
    "name",
    "provider",
    "address",
    "city",
    "phone",
    "email",
    "brands",
    "valid_from",
    "valid_to",
)


def _outlet_body(world: World) -> dict[str, Any]:
    return {
        "code": "UZ-TASHKENT",
        "country": "UZ",
        "name": "Tashkent Service",
        "provider": "Silk Road Aftercare",
        "address": "1 Amir Temur St",
        "city": "Tashkent",
        "phone": "+998 71 000 0000",
        "email": "service@example.test",
        "brands": "Example",
        "valid_from": "2026-01-01",
        "valid_to": None,
    }


ENDPOINTS = (
    Endpoint(
        "precheck",
        "POST",
        lambda w, _n: "/api/v1/precheck",
        "exporter",
        lambda w: w.precheck_body(),
        (
            ("manufacturer", _set("manufacturer")),
            ("application_date", _set("application_date")),
            ("reference", _set("reference")),
            *((f"vehicles[0].{f}", _set("vehicles", 0, f)) for f in _VEHICLE_FIELDS),
        ),
    ),
    Endpoint(
        "requests",
        "POST",
        lambda w, _n: "/api/v1/requests",
        "exporter",
        lambda w: w.precheck_body(supersedes=None),
        (
            ("manufacturer", _set("manufacturer")),
            ("application_date", _set("application_date")),
            ("reference", _set("reference")),
            ("supersedes", _set("supersedes")),
            *((f"vehicles[0].{f}", _set("vehicles", 0, f)) for f in _VEHICLE_FIELDS),
        ),
    ),
    Endpoint(
        "decision",
        "POST",
        lambda w, _n: f"/api/v1/requests/{w.request_id}/decision",
        "aftersales",
        lambda w: {"approve": [w.vins[0]], "reject": [{"vin": w.vins[1], "reason": "not ours"}], "note": "n"},
        (
            ("approve", _set("approve", 0)),
            ("reject[0].vin", _set("reject", 0, "vin")),
            ("reject[0].reason", _set("reject", 0, "reason")),
            ("note", _set("note")),
            ("valid_until", _set("valid_until")),
        ),
    ),
    Endpoint(
        "revoke",
        "POST",
        lambda w, number: f"/api/v1/letters/{number}/revoke",
        "aftersales",
        lambda w: {"reason": "issued in error"},
        (("reason", _set("reason")),),
    ),
    Endpoint(
        "outlets POST",
        "POST",
        lambda w, _n: "/api/v1/outlets",
        "aftersales",
        _outlet_body,
        (("code", _set("code")), *((f, _set(f)) for f in _OUTLET_FIELDS)),
    ),
    Endpoint(
        "outlets PATCH",
        "PATCH",
        lambda w, _n: "/api/v1/outlets/KZ-ALMATY",
        "aftersales",
        lambda w: {"name": "Almaty Service Centre"},
        tuple((f, _set(f)) for f in _OUTLET_FIELDS),
    ),
)


@pytest.fixture(params=ENDPOINTS, ids=lambda e: e.name)
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def number_for(endpoint: Endpoint, request: pytest.FixtureRequest) -> str:
    """A real letter's number for the revoke endpoint (issuing costs a render, so only there)."""
    return request.getfixturevalue("letter_number") if endpoint.name == "revoke" else ""


def send(world: World, endpoint: Endpoint, number: str, raw: bytes, content_type: str = "application/json") -> Any:
    who = world.exporter if endpoint.who == "exporter" else world.aftersales
    return world.client.open(
        endpoint.path(world, number),
        method=endpoint.method,
        data=raw,
        headers={**who.headers, "Content-Type": content_type},
    )


# -- malformed and oversized bodies ------------------------------------------------------------


def test_every_json_endpoint_answers_400_to_a_body_that_is_not_one_json_object(
    world: World, endpoint: Endpoint, number_for: str
) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    for label, raw in samples.MALFORMED_JSON:
        response = send(world, endpoint, number_for, raw)
        expect_refused(problems, label, response, (400,), before=before)
    valid = json.dumps(endpoint.body(world)).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        response = send(world, endpoint, number_for, valid, content_type)
        expect_refused(problems, f"Content-Type {content_type!r}", response, (400,), before=before)
    problems.assert_none()
    before.assert_whole()


def test_every_json_endpoint_answers_413_to_a_body_over_10_mb(
    world: World, endpoint: Endpoint, number_for: str
) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    response = send(world, endpoint, number_for, samples.oversized_json(TEN_MB))
    expect_refused(problems, "10 MB + 1 byte", response, (413,), before=before, mentions="MB")
    problems.assert_none()
    before.assert_whole()


def test_every_string_field_refuses_long_nul_surrogate_and_numeric_values(
    world: World, endpoint: Endpoint, number_for: str
) -> None:
    """100,000 characters, a NUL, a lone surrogate and huge numbers in every string field of the
    body, and in an unknown field's name: 422 naming the field (400 for what is not text at all)."""
    problems = Problems()
    before = Unchanged(world.session)
    numbers = samples.huge_numbers()
    for index, (field, setter) in enumerate(endpoint.string_fields):
        for label, value in (("100,000 characters", samples.LONG_TEXT), ("NUL", samples.NUL_TEXT)):
            body = endpoint.body(world)
            setter(body, value)
            response = send(world, endpoint, number_for, json.dumps(body).encode())
            expect_refused(problems, f"{field}: {label}", response, (422,), before=before, mentions=field)
        # Each field gets one lone surrogate and one number JSON allows and no field means, in turn.
        escape = samples.LONE_SURROGATES[index % len(samples.LONE_SURROGATES)]
        label, number = numbers[index % len(numbers)]
        for what, placeholder, replacement, statuses in (
            (f"lone surrogate {escape}", '"@@"', f'"{escape}"', (400,)),
            (label, '"@@"', samples.raw_json_value(number).decode(), (400, 422)),
        ):
            body = endpoint.body(world)
            setter(body, "@@")
            raw = json.dumps(body).replace(placeholder, replacement).encode()
            response = send(world, endpoint, number_for, raw)
            expect_refused(problems, f"{field}: {what}", response, statuses, before=before)
    for label, key in (("NUL", "x\x00y"), ("100,000 characters", samples.LONG_TEXT)):
        body = {**endpoint.body(world), key: "x"}
        response = send(world, endpoint, number_for, json.dumps(body).encode())
        expect_refused(problems, f"unknown field named {label}", response, (422,), before=before)
    body = json.dumps(endpoint.body(world))
    raw = (body[:-1] + ', "\\udc00": "x"}').encode()
    response = send(world, endpoint, number_for, raw)
    expect_refused(problems, "a field named by a lone surrogate", response, (400,), before=before)
    problems.assert_none()
    before.assert_whole()


def test_a_valid_body_is_still_accepted_after_the_hostile_ones(world: World) -> None:
    """The control: the very bodies the hostile tests spoil are accepted as they are."""
    precheck = world.client.post("/api/v1/precheck", json=world.precheck_body(), headers=world.exporter.headers)
    assert precheck.status_code == 200, precheck.get_data(as_text=True)
    assert precheck.get_json()["vehicles"][0]["verdict"] == "eligible"
    outlet = world.client.post("/api/v1/outlets", json=_outlet_body(world), headers=world.aftersales.headers)
    assert outlet.status_code == 201, outlet.get_data(as_text=True)


# -- look-alikes -------------------------------------------------------------------------------


def _verdicts(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["vehicles"]  # type: ignore[no-any-return]


def test_precheck_refuses_a_look_alike_vin_with_vin_format_while_its_ascii_twin_is_eligible(world: World) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    for label, genuine, hostile in samples.vin_lookalikes():
        body = world.precheck_body(vehicles=[world.vehicle(genuine), world.vehicle(hostile)])
        response = world.client.post("/api/v1/precheck", json=body, headers=world.exporter.headers)
        twin, lookalike = _verdicts(response)
        problems.check(f"{label}: the ASCII VIN", twin["verdict"] == "eligible", twin)
        problems.check(
            f"{label}: the look-alike",
            lookalike["verdict"] == "refused" and "VIN_FORMAT" in lookalike["reasons"] and lookalike["vin"] != genuine,
            lookalike,
        )
        problems.check(f"{label} (database)", not before.changed())
    problems.assert_none()
    before.assert_whole()


def test_a_request_holding_a_look_alike_vin_is_refused_with_422_naming_the_vehicle(world: World) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    for label, _genuine, hostile in samples.vin_lookalikes():
        body = world.precheck_body(vehicles=[world.vehicle(world.spare), world.vehicle(hostile)])
        response = world.client.post("/api/v1/requests", json=body, headers=world.exporter.headers)
        expect_refused(problems, label, response, (422,), before=before, mentions="vehicles[1].vin")
    problems.assert_none()
    before.assert_whole()


def test_a_decision_naming_a_look_alike_vin_changes_nothing(world: World) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    path = f"/api/v1/requests/{world.request_id}/decision"
    for label, genuine, hostile in samples.vin_lookalikes():
        assert genuine in world.vins  # the ASCII twin is a vehicle of the request
        for body in (
            {"approve": [hostile]},
            {"approve": [], "reject": [{"vin": hostile, "reason": "x"}]},
        ):
            response = world.client.post(path, json=body, headers=world.aftersales.headers)
            expect_refused(problems, f"{label}: {list(body)}", response, (422,), before=before)
    problems.assert_none()
    before.assert_whole()
    # The control: the ASCII twin, a vehicle of the request, is decided.
    ok = world.client.post(
        path, json={"approve": [], "reject": [{"vin": world.vins[0], "reason": "x"}]}, headers=world.aftersales.headers
    )
    assert ok.status_code == 200, ok.get_data(as_text=True)


@pytest.mark.parametrize("code", ["KZ", "SA"])
def test_a_look_alike_destination_is_never_read_as_the_country(world: World, code: str) -> None:
    """Precheck: DESTINATION_INVALID; a request: 422; an outlet: 422; a filter: 422. ``ß``
    (upper case ``SS``, South Sudan) and ``ﬁ`` (``FI``) are not countries either."""
    problems = Problems()
    before = Unchanged(world.session)
    hostile = [*samples.code_lookalikes(code), *samples.UPPER_CASE_TRAPS[:2]]
    for label, spelling in hostile:
        body = world.precheck_body(vehicles=[world.vehicle(destination=spelling)])
        verdict = _verdicts(world.client.post("/api/v1/precheck", json=body, headers=world.exporter.headers))[0]
        problems.check(f"{label}: precheck", verdict["reasons"] == ["DESTINATION_INVALID"], verdict)
        filed = world.client.post("/api/v1/requests", json=body, headers=world.exporter.headers)
        expect_refused(
            problems,
            f"{label}: request",
            filed,
            (422,),
            before=before,
            mentions="vehicles[0].destination",
        )
        outlet = world.client.post(
            "/api/v1/outlets", json={**_outlet_body(world), "country": spelling}, headers=world.aftersales.headers
        )
        expect_refused(problems, f"{label}: outlet", outlet, (422,), before=before, mentions="country")
        patch = world.client.patch(
            "/api/v1/outlets/KZ-ALMATY", json={"country": spelling}, headers=world.aftersales.headers
        )
        expect_refused(problems, f"{label}: outlet edit", patch, (422,), before=before)
        listed = world.client.get(
            "/api/v1/outlets", query_string={"country": spelling}, headers=world.aftersales.headers
        )
        expect_refused(problems, f"{label}: filter", listed, (422,), before=before)
    problems.assert_none()
    before.assert_whole()


def test_a_look_alike_outlet_or_manufacturer_code_is_refused_or_matches_nothing(world: World) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    for label, spelling in [*samples.code_lookalikes("KZ-ALMATY"), *samples.UPPER_CASE_TRAPS]:
        created = world.client.post(
            "/api/v1/outlets", json={**_outlet_body(world), "code": spelling}, headers=world.aftersales.headers
        )
        expect_refused(problems, f"{label}: new outlet code", created, (422,), before=before)
        for method in ("GET", "PATCH"):
            response = world.client.open(
                f"/api/v1/outlets/{spelling}", method=method, json={"name": "x"}, headers=world.aftersales.headers
            )
            expect_refused(problems, f"{label}: {method} outlet", response, (404,), before=before)
    for label, spelling in [*samples.code_lookalikes("ACME"), ("long s", "ACME\u017f")]:
        body = world.precheck_body(manufacturer=spelling)
        for path in ("/api/v1/precheck", "/api/v1/requests"):
            response = world.client.post(path, json=body, headers=world.exporter.headers)
            expect_refused(problems, f"{label}: {path}", response, (404, 422), before=before)
    problems.assert_none()
    before.assert_whole()


def test_codes_created_by_the_command_line_refuse_look_alikes(cli: FlaskCliRunner, world: World) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    for label, spelling in [*samples.code_lookalikes("NEWCO"), ("sharp s", "NEWCO\u00df"), ("ligature", "NEW\ufb01")]:
        for args in (
            [
                "manufacturer",
                "create",
                "--code",
                spelling,
                "--name",
                "新公司",
                "--name-en",
                "New Co",
                "--uscc",
                factories.uscc(9_000_001),
                "--wmi",
                "LFV",
            ],
            ["exporter", "create", "--code", spelling, "--name", "新出口", "--uscc", factories.uscc(9_000_002)],
        ):
            result = cli.invoke(args=args)
            lines = result.stderr.splitlines()
            problems.check(
                f"{label}: {args[0]} create",
                result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "code" in lines[0],
                (result.exit_code, result.output),
            )
            changed = before.changed()
            problems.check(f"{label}: {args[0]} create (database)", not changed, changed)
    problems.assert_none()
    before.assert_whole()


# -- query strings, path parameters, headers ---------------------------------------------------

HOSTILE_QUERY_VALUES = (
    ("NUL", "a\x00b"),
    ("100,000 characters", samples.LONG_TEXT),
    ("5,000 digits", "9" * 5_000),
    ("negative", "-1"),
    ("float", "1.5"),
    ("exponent", "1e3"),
    ("full-width", "\uff2b\uff3a"),
    ("zero-width", "KZ\u200b"),
    ("right-to-left override", "\u202eKZ"),
    ("SQL", "' OR '1'='1"),
    ("percent-encoded invalid UTF-8", "%FF%FE"),
)

QUERY_SURFACES = (
    ("/api/v1/requests", ("status", "limit", "offset"), "exporter"),
    ("/api/v1/letters", ("limit", "offset"), "exporter"),
    ("/api/v1/outlets", ("country", "active"), "aftersales"),
)


def test_every_query_parameter_refuses_hostile_values_with_4xx(world: World) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    for path, names, who in QUERY_SURFACES:
        headers = (world.exporter if who == "exporter" else world.aftersales).headers
        assert world.client.get(path, headers=headers).status_code == 200
        for name in names:
            for label, value in HOSTILE_QUERY_VALUES:
                if name == "offset" and label == "exponent":
                    continue  # not a number either way; covered by "float"
                response = world.client.get(path, query_string={name: value}, headers=headers)
                expect_refused(problems, f"{path}?{name}= {label}", response, (400, 422), before=before)
    problems.assert_none()
    before.assert_whole()


def _path_samples(genuine: str) -> list[tuple[str, str]]:
    return [
        ("NUL", genuine[:2] + "%00" + genuine[2:]),
        ("100,000 characters", "A" * 100_000),
        ("traversal", "..%2F..%2Fetc%2Fpasswd"),
        ("encoded backslashes", "..%5C..%5Cwin.ini"),
        ("invalid UTF-8", "%FF%FE"),
        ("encoded surrogate", "%ED%A0%80"),
        ("newline", genuine + "%0D%0AX-Injected:%201"),
        *((label, value) for label, value in samples.code_lookalikes(genuine)),
    ]


def test_every_path_parameter_answers_404_or_400_to_hostile_values(world: World, letter_number: str) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    surfaces = (
        ("GET", "/api/v1/outlets/{}", "KZ-ALMATY", world.aftersales, None),
        ("PATCH", "/api/v1/outlets/{}", "KZ-ALMATY", world.aftersales, {"name": "x"}),
        ("GET", "/api/v1/letters/{}", letter_number, world.exporter, None),
        ("GET", "/api/v1/letters/{}/pdf", letter_number, world.exporter, None),
        ("POST", "/api/v1/letters/{}/revoke", letter_number, world.aftersales, {"reason": "x"}),
        ("GET", "/api/v1/verify/{}?code=ABCD", letter_number, world.exporter, None),
        ("GET", "/api/v1/requests/{}", str(world.request_id), world.exporter, None),
        ("POST", "/api/v1/requests/{}/decision", str(world.request_id), world.aftersales, {"approve": "all_eligible"}),
    )
    for method, template, genuine, who, body in surfaces:
        for label, value in [*_path_samples(genuine), ("5,000 digits", "9" * 5_000), ("negative", "-1")]:
            url = template.format(value)
            response = world.client.open(url, method=method, json=body, headers=who.headers)
            expect_refused(problems, f"{method} {template} {label}", response, (400, 404), before=before)
    problems.assert_none()
    before.assert_whole()


def test_hostile_headers_are_refused_or_ignored_never_a_500(world: World) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    token = world.exporter.token
    for label, headers, statuses in (
        ("NUL in the token", {"Authorization": f"Bearer {token[:5]}\x00{token[5:]}"}, (401,)),
        ("token of 100,000 characters", {"Authorization": "Bearer " + "a" * 100_000}, (401,)),
        ("non-ASCII token", {"Authorization": "Bearer \u0410" + token[1:]}, (401,)),
        ("NUL in Accept-Language", {**world.exporter.headers, "Accept-Language": "zh\x00en"}, (200,)),
        ("NUL in X-Forwarded-For", {**world.exporter.headers, "X-Forwarded-For": "1.2.3.4\x00"}, (200,)),
        ("NUL in Idempotency-Key", {**world.exporter.headers, "Idempotency-Key": "k\x00"}, (400, 422)),
        ("long Idempotency-Key", {**world.exporter.headers, "Idempotency-Key": "k" * 100_000}, (400, 422)),
        ("look-alike Idempotency-Key", {**world.exporter.headers, "Idempotency-Key": "\u202ekey"}, (400, 422)),
    ):
        if "Idempotency" in label:
            response = world.client.post("/api/v1/requests", json=world.precheck_body(), headers=headers)
        else:
            response = world.client.get("/api/v1/requests", headers=headers)
        if statuses == (200,):
            problems.check(label, response.status_code == 200, response.status_code)
            problems.check(f"{label} (database)", not before.changed())
        else:
            expect_refused(problems, label, response, statuses, before=before)
    problems.assert_none()
    before.assert_whole()


# -- the text fields of the web forms ----------------------------------------------------------


@dataclass(frozen=True)
class Form:
    """A web form: who sends it, where, a valid filling, and its text fields to spoil."""

    name: str
    who: str
    path: str
    page: str
    valid: dict[str, str]
    text_fields: tuple[str, ...]
    code_fields: tuple[str, ...] = ()


def _forms(world: World, letter: str) -> tuple[Form, ...]:
    outlet = {
        "code": "UZ-1",
        "country": "UZ",
        "name": "Tashkent Service",
        "provider": "Silk Road LLC",
        "address": "1 Amir Temur St",
        "city": "Tashkent",
        "phone": "+998 71 000",
        "email": "a@example.test",
        "brands": "Example",
        "valid_from": "2026-01-01",
        "valid_to": "",
    }
    edit = {k: v for k, v in outlet.items() if k != "code"}
    pasted = f"{world.vins[0]}\tExample\tE1\t{REGISTERED_ON}\tKZ"
    encoded = json.dumps(
        {"v": 1, "vehicles": [[world.vins[0], "Example", "E1", REGISTERED_ON, "KZ", None]]}, separators=(",", ":")
    )
    request_page = f"/requests/{world.request_id}"
    organisation = {"name": "新公司", "name_en": "New Co", "uscc": factories.uscc(9_100_001)}
    return (
        Form("sign-in", "anonymous", "/login", "/login", {"email": "x@example.test", "password": "p"}, ("email",)),
        Form("new outlet", "staff", "/registry/outlets/new", "/registry/outlets/new", outlet,
             tuple(outlet), ("code", "country")),
        Form("outlet edit", "staff", "/registry/outlets/KZ-ALMATY", "/registry/outlets/KZ-ALMATY", edit,
             tuple(edit), ("country",)),
        Form("negative list", "staff", "/registry/blocks", "/registry/blocks", {"exporter": "EXP1", "reason": "r"},
             ("exporter", "reason"), ("exporter",)),
        Form("pasted list", "exporter", "/precheck", "/precheck",
             {"application_date": APPLYING_ON, "reference": "", "vehicles": pasted}, ("reference", "vehicles")),
        Form("send a part", "exporter", "/precheck/submit", "/precheck",
             {"manufacturer": "ACME", "application_date": APPLYING_ON, "reference": "", "vehicles": encoded,
              "supersedes": ""},
             ("manufacturer", "application_date", "reference", "vehicles", "supersedes"), ("manufacturer",)),
        Form("revoke", "staff", f"/letters/{letter}/revoke", f"/letters/{letter}/revoke",
             {"reason": "issued in error", "confirm": "y"}, ("reason",)),
        Form("decision", "staff", f"{request_page}/decision", request_page,
             {"action": "reject", "reject": world.vins[0], "reason": "not ours", "note": ""},
             ("reject", "reason", "note", "action")),
        Form("new token", "exporter", "/account/tokens", "/account", {"name": "script"}, ("name",)),
        Form("new manufacturer", "platform", "/admin/manufacturers/new", "/admin/manufacturers/new",
             {"code": "NEWCO", **organisation, "type": "vehicle_manufacturer", "wmis": "LFV",
              "letter_validity_days": ""},
             ("code", "name", "name_en", "uscc", "wmis"), ("code",)),
        Form("new exporter", "platform", "/admin/exporters/new", "/admin/exporters/new",
             {"code": "NEWEX", **organisation}, ("code", "name", "name_en", "uscc"), ("code",)),
    )  # fmt: skip


def test_every_web_form_refuses_nul_long_and_look_alike_text_with_a_4xx_page(
    app: Any, world: World, letter_number: str
) -> None:
    from tests.web.ui.conftest import Browser, csrf_token

    def signed_in(role: str, **organisation: Any) -> Browser:
        user = accounts.set_locale(
            session=world.session, user=factories.user(world.session, role, **organisation), locale="en"
        )
        return Browser(app.test_client()).sign_in(user)

    browsers = {
        "anonymous": Browser(app.test_client()),
        "exporter": signed_in("exporter", exporter=world.session.get(type(world.manufacturer), world.manufacturer.id)
                              and factories.exporter(world.session, "EXP2")),
        "staff": signed_in("aftersales", manufacturer=world.manufacturer),
        "platform": signed_in("platform_admin"),
    }  # fmt: skip
    problems = Problems()
    before = Unchanged(world.session)
    for form in _forms(world, letter_number):
        browser = browsers[form.who]
        token = csrf_token(browser.get(form.page).get_data(as_text=True))
        spoilt = [(f, label, value) for f in form.text_fields for label, value in (("NUL", "a\x00b"),
                  ("100,000 characters", samples.LONG_TEXT))]  # fmt: skip
        spoilt += [(f, label, value) for f in form.code_fields for label, value in samples.code_lookalikes("KZ")]
        if form.name == "pasted list":  # one cell beyond the csv module's own default limit (128 kB)
            spoilt.append(("vehicles", "a cell of 200,000 characters", "A" * 200_000))
        for field, label, value in spoilt:
            response = browser.client.post(form.path, data={**form.valid, field: value, "csrf_token": token})
            problems.inputs += 1
            text = response.get_data(as_text=True)
            problems.check(
                f"{form.name}: {field} {label}",
                response.status_code in (400, 404, 422)
                and response.mimetype == "text/html"
                and "Traceback" not in text
                and "form has expired" not in text,
                (response.status_code, text[-300:]),
            )
            problems.check(f"{form.name}: {field} {label} (database)", not before.changed(), before.changed())
    problems.assert_none()
    before.assert_whole()
