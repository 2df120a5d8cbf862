"""The API contract under fuzzing: schemathesis generates calls to every operation of
/api/v1/openapi.json, and every answer must be what the document says.

What is proved, on SQLite and on PostgreSQL:
- no call gets a 5xx (``not_a_server_error``);
- every answer's status code, content type and headers are documented for its operation
  (``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance``),
  and its body conforms to the documented schema (``response_schema_conformance``);
- data that breaks the document's schemas is refused with a 4xx (``negative_data_rejection``),
  and data of the documented shape is never refused as malformed (``positive_data_acceptance``:
  a 422 is accepted for it, since data of the right shape can still break a rule, e.g. name an
  unknown manufacturer; a 400 or 413 is not);
- authentication is not ignored: each call is repeated without its token and with a bad one, and
  must then get a 401 (``ignored_auth``); a call with a method the path does not serve gets a 405
  naming the allowed ones (``unsupported_method``);
- every operation that needs a token answers fuzzed calls without one, with a malformed one and
  with the token of a role that may not call it with a 401 / 401 / 403 JSON error of the
  documented shape;
- the fuzzing got past validation: every operation fuzzed answered at least one call with a 2xx
  (checked when a backend's world is torn down, so a failure shows as an error at teardown).

How: the real app (``create_app``) over a database of its own, migrated and seeded with a world
made through the real services and the API: a manufacturer with a seal key, its registry and
outlets, another manufacturer (and its outlet), an exporter, a user of every role with an API
token, a sealed letter, a letter issued through the job queue (the job run as a worker runs it),
and three requests waiting for a decision. Each operation is called with the token of a role
that may call it, chosen per example among the roles its view allows (read from the app's
url_map), so the fuzzed data gets past authentication. Two positive examples in three are aimed
at the world: the path's id, number, code or job id is replaced by a real one (with the
verification code, as printed or as typed), the manufacturer of a request body by a hosted one,
the VINs by registered ones, a decision made "all_eligible", an outlet's country and code made
valid; so the code behind a successful lookup is fuzzed too. Schemathesis re-validates an example
so changed, and its checks judge the data actually sent.

The document fuzzed is ``build_document()``, loaded when the module is collected (schemathesis
makes one test per operation from it, before any app exists); each world checks that its app
serves exactly that document at /api/v1/openapi.json.

Bounded and reproducible: at most MAX_EXAMPLES fuzzed examples per operation (plus
schemathesis's coverage cases), a fixed seed with derandomised generation, no Hypothesis example
database (nothing is written to the tree), no deadline (sealing a letter takes a second). Every
call the app receives is counted, per operation and status; the counts are printed at the end of
each backend's run when pytest runs without xdist (``-n 0``).

Unknown query parameters are ignored by the API (so a client may send ones a later version
knows), which OpenAPI 3.0 cannot say: ``allow-extra-parameters`` is off, so schemathesis does not
send extra parameters as invalid data. That unknown fields of a JSON body are refused is checked
by ``test_unknown_body_fields_are_refused_with_a_422_naming_them``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import schemathesis
from argon2 import PasswordHasher
from flask import Flask
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException

from issuer import clock, create_app
from issuer.config import Settings
from issuer.db import make_engine
from issuer.migrate import upgrade
from issuer.models import Role, User
from issuer.services import accounts, issuance_jobs
from issuer.services import letters as letter_service
from issuer.services.keys import generate_key
from issuer.web.openapi import build_document
from tests import factories
from tests.conftest import TEST_DATABASE_URL, TODAY, _create_postgres_database, _drop_postgres_database

PREFIX = "/api/v1"
MAX_EXAMPLES = 30
SEED = 20260915
BACKENDS = ["sqlite", "postgresql"]
T = TypeVar("T")

# One xdist worker could run them all, building each world once. (With pytest 9.2 and
# pytest-xdist 3.8 groups are not applied: each worker then builds the worlds it needs; nothing
# here depends on the grouping.)
pytestmark = pytest.mark.xdist_group("api_fuzzing")


# -- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    """The app under test, the tokens of its users and what the fuzzer may aim at in it."""

    backend: str
    app: Flask
    tokens: dict[Role, str]
    request_ids: list[int]
    submitted_ids: list[int]
    letter_codes: dict[str, str]  # letter number -> verification code
    job_ids: list[str]
    outlet_codes: list[str]
    manufacturer_codes: list[str]
    registered_vins: list[str]
    # (method, OpenAPI path) -> status -> calls the app answered so
    answers: dict[tuple[str, str], Counter[int]] = field(default_factory=dict)
    # (test, method, OpenAPI path, schemathesis phase) -> examples run
    examples: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)

    def __repr__(self) -> str:
        return f"World({self.backend})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis shows the arguments of a failing example: the world by its name only."""
        printer.text(repr(self))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def openapi_path(rule: str) -> str:
    """``/api/v1/requests/<int(max=…):request_id>`` -> ``/requests/{request_id}``."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.removeprefix(PREFIX))


def _seed(app: Flask, url: str, settings: Settings) -> World:
    engine = make_engine(url)
    upgrade(engine)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    with sessions() as session:
        maker = factories.manufacturer(session, "ACME", wmis=("LGX",))
        other = factories.manufacturer(session, "OTHER", wmis=("LRW",))
        generate_key(
            session=session,
            manufacturer_code=maker.code,
            keys_dir=settings.keys_dir,
            passphrase=settings.seal_passphrase,
        )
        vins = factories.random_vins("LGX", 10, seed=5)
        factories.register(session, maker, vins)
        outlets = [
            factories.outlet(session, maker, code="KZ-ALMATY", country="KZ"),
            factories.outlet(session, maker, code="UZ-TASHKENT", country="UZ", brands="Example"),
            factories.outlet(session, other, code="KZ-OTHER", country="KZ"),
        ]
        exporter = factories.exporter(session, "EXP1")
        users = {
            Role.MANUFACTURER_ADMIN: factories.user(session, "manufacturer_admin", manufacturer=maker),
            Role.AFTERSALES: factories.user(session, "aftersales", manufacturer=maker),
            Role.EXPORTER: factories.user(session, "exporter", exporter=exporter),
            Role.REVIEWER: factories.user(session, "reviewer"),
            Role.PLATFORM_ADMIN: factories.user(session, "platform_admin"),
        }
        tokens = {role: factories.token(session, user) for role, user in users.items()}
        outlet_codes = [o.code for o in outlets]
        manufacturer_codes = [maker.code, other.code]

    client = app.test_client()
    document = client.get(f"{PREFIX}/openapi.json")
    assert document.get_json() == build_document(), "the app serves another document than the one fuzzed"

    def file(request_vins: list[str]) -> int:
        body = {
            "manufacturer": "ACME",
            "application_date": (TODAY + dt.timedelta(days=10)).isoformat(),
            "reference": "CONTRACT-2026-001",
            "vehicles": [
                {
                    "vin": vin,
                    "brand": "Example",
                    "model": "E1",
                    "registration_date": (TODAY - dt.timedelta(days=30)).isoformat(),
                    "destination": "KZ",
                }
                for vin in request_vins
            ],
        }
        filed = client.post(f"{PREFIX}/requests", json=body, headers=_bearer(tokens[Role.EXPORTER]))
        assert filed.status_code == 201, filed.get_json()
        return int(filed.get_json()["id"])

    decided_id = file(vins[:2])
    decided = client.post(
        f"{PREFIX}/requests/{decided_id}/decision",
        json={"approve": "all_eligible"},
        headers=_bearer(tokens[Role.AFTERSALES]),
    )
    assert decided.status_code == 200, decided.get_json()
    number = decided.get_json()["letter_number"]
    exporter_headers = _bearer(tokens[Role.EXPORTER])
    letter = client.get(f"{PREFIX}/letters/{number}", headers=exporter_headers).get_json()
    # Requests waiting for a decision: a decision succeeds once, so the fuzzer gets three.
    submitted_ids = [file(vins[2:4]), file(vins[6:8]), file(vins[8:10])]

    # A letter issued through the job queue, the job run as a worker runs it (this app has no
    # queue: its own decisions seal inline).
    queued_id = file(vins[4:6])
    issuance = app.extensions["issuer.issuance"]
    with sessions() as session:
        staff = session.get(User, users[Role.AFTERSALES].id)
        assert staff is not None
        queued = letter_service.decide_request(
            session=session,
            user=staff,
            request_id=queued_id,
            approve="all_eligible",
            reject=[],
            note="",
            issuance=issuance,
            queue_job=lambda s, reserved: issuance_jobs.create_job(s, reserved, actor=staff.email),
        )
        job_id = queued.job.id
        assert issuance_jobs.run_job(session=session, job_id=job_id, issuance=issuance) == "done"
    engine.dispose()
    queued_letter = client.get(f"{PREFIX}/letters/{queued.letter.number}", headers=exporter_headers).get_json()
    return World(
        backend="",
        app=app,
        tokens=tokens,
        request_ids=[decided_id, *submitted_ids, queued_id],
        submitted_ids=submitted_ids,
        letter_codes={
            number: letter["verification_code"],
            queued_letter["number"]: queued_letter["verification_code"],
        },
        job_ids=[job_id],
        outlet_codes=outlet_codes,
        manufacturer_codes=manufacturer_codes,
        registered_vins=vins,
    )


class WorldApp:
    """The WSGI app schemathesis calls: the app of the world being fuzzed, which it forwards
    to, counting each answer by operation and status."""

    world: World | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        world = self.world
        assert world is not None, "no world is being fuzzed"
        try:
            rule, _ = world.app.url_map.bind_to_environ(environ).match(return_rule=True)
            operation = (environ["REQUEST_METHOD"].upper(), openapi_path(rule.rule))
        except HTTPException as refusal:  # no such path (404), or not with this method (405)
            operation = ("*", f"(unrouted, {refusal.code})")

        def counting_start_response(status: str, headers: Any, *args: Any) -> Any:
            world.answers.setdefault(operation, Counter())[int(status.split()[0])] += 1
            return start_response(status, headers, *args)

        return world.app(environ, counting_start_response)


TARGET = WorldApp()


def _never_ok(world: World) -> list[str]:
    """The operations fuzzed with a permitted role that never answered a 2xx: a fuzzer that
    only ever got refusals would prove little about the code behind them."""
    fuzzed = {(method, path) for test, method, path, _ in world.examples if test == "documented"}
    return sorted(
        f"{method} {path}"
        for method, path in fuzzed
        if (method, path) in world.answers and not any(200 <= status < 300 for status in world.answers[(method, path)])
    )


def _summary(world: World) -> list[str]:
    """Lines reporting the run: examples per operation, test and phase, calls answered per status."""
    lines = [f"API fuzzing on {world.backend}:"]
    for (method, path), statuses in sorted(world.answers.items(), key=lambda item: (item[0][1], item[0][0])):
        runs = {f"{t}/{p}": n for (t, m, o, p), n in sorted(world.examples.items()) if (m, o) == (method, path)}
        shown = ", ".join(f"{status}×{n}" for status, n in sorted(statuses.items()))
        lines.append(f"  {method} {path}: examples {runs or '-'}; answers {shown}")
    per_test = Counter[str]()
    for (test, *_), n in world.examples.items():
        per_test[test] += n
    total_calls = sum(sum(c.values()) for c in world.answers.values())
    lines.append(f"  examples {dict(per_test)}; {total_calls} calls answered (checks re-send some calls)")
    return lines


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The app over a seeded database of its own: the fuzzer's calls commit, so it cannot share
    the suite's rolled-back transaction."""
    root = tmp_path_factory.mktemp("fuzz")
    postgres_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'issuer.db'}"
    else:
        if not TEST_DATABASE_URL:
            pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL not fuzzed")
        postgres_name, url = _create_postgres_database()
    settings = Settings(
        database_url=url,
        secret_key="fuzz-secret-" + uuid.uuid4().hex,
        keys_dir=root / "keys",
        key_passphrase="fuzz-passphrase",
        public_url="http://issuer.test",
        ratelimit_enabled=False,
    )
    app = create_app(settings)
    try:
        # API calls use tokens, never passwords: the default Argon2 cost would only slow the set-up.
        with clock.frozen(TODAY), pytest.MonkeyPatch.context() as patch:
            patch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
            world = _seed(app, url, settings)
        world.backend = request.param
        TARGET.world = world
        yield world
        never_ok = _never_ok(world)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if world.examples and reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                for line in _summary(world):
                    reporter.write_line(line)
        if never_ok:
            pytest.fail(f"fuzzed operations that never answered 2xx on {world.backend}: {', '.join(never_ok)}")
    finally:
        TARGET.world = None
        app.extensions["issuer.db"].engine.dispose()
        if postgres_name:
            _drop_postgres_database(postgres_name)


def allowed_roles(app: Flask, method: str, path: str) -> tuple[Role, ...] | None:
    """The roles the view of (method, OpenAPI path) allows, or None for a public operation."""
    for rule in app.url_map.iter_rules(None):
        if openapi_path(rule.rule) == path and method.upper() in (rule.methods or ()):
            return getattr(app.view_functions[rule.endpoint], "allowed_roles", None)
    raise AssertionError(f"{method} {path} is documented but not served")


# -- the schema and how examples are aimed at the world --------------------------------------


def fuzzing_config(*, mode: str, max_examples: int, coverage: bool) -> Any:
    """Bounded, reproducible generation: a fixed seed, derandomised, no example database, and no
    learning from earlier answers (schemathesis can feed values and error messages of answers
    into later examples; that makes an example depend on the order of calls)."""
    no_feedback = {"extra-data-sources": {"responses": False}}
    return schemathesis.config.SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": mode,
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
                "allow-extra-parameters": False,  # see the module's docstring
            },
            "phases": {
                "examples": no_feedback,
                "coverage": {"enabled": coverage, **no_feedback},
                "fuzzing": {"error-feedback": {"enabled": False}, **no_feedback},
                # The stateful phase (chains of linked calls) needs links the document does not declare.
                "stateful": {"enabled": False},
            },
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422"]},
            },
        }
    )


CONFIG = fuzzing_config(mode="all", max_examples=MAX_EXAMPLES, coverage=True)
schema = schemathesis.openapi.from_dict(build_document(), config=CONFIG)
schema.app = TARGET


def _is_positive(case: Any) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode.name == "POSITIVE"


def _aimed(case: Any, world: World) -> list[Callable[[], None]]:
    """Ways to aim ``case`` at the world, each a change of the case; empty for no way."""
    path = case.operation.path
    aims: list[Callable[[], None]] = []

    def path_parameters(**values: Any) -> Callable[[], None]:
        return lambda: setattr(case, "path_parameters", {**case.path_parameters, **values})

    if "{request_id}" in path:
        aims += [path_parameters(request_id=i) for i in world.request_ids]
    if "{code}" in path and case.method.upper() == "GET":  # edits: see below
        aims += [path_parameters(code=c) for c in world.outlet_codes]
    if "{number}" in path:
        aims += [path_parameters(number=n) for n in world.letter_codes]
    if "{job_id}" in path:
        aims += [path_parameters(job_id=j) for j in world.job_ids]
    if path == "/verify/{number}":
        for number, code in world.letter_codes.items():
            aims.append(lambda n=number, c=code: (path_parameters(number=n)(), setattr(case, "query", {"code": c})))
            # Case and dashes do not matter when a code is typed.
            typed = code.replace("-", "").lower()
            aims.append(lambda n=number, c=typed: (path_parameters(number=n)(), setattr(case, "query", {"code": c})))
    if not isinstance(case.body, dict):
        return aims

    def body(**values: Any) -> Callable[[], None]:
        return lambda: setattr(case, "body", {**case.body, **values})

    if path in ("/precheck", "/requests"):
        # A hosted manufacturer, and no letter to supersede (a made-up number is refused).
        filing = {"supersedes": None} if path == "/requests" else {}
        aims += [body(manufacturer=code, **filing) for code in world.manufacturer_codes]

        def registered_vins() -> None:
            vehicles = [
                {**vehicle, "vin": world.registered_vins[i % len(world.registered_vins)], "destination": "KZ"}
                for i, vehicle in enumerate(case.body.get("vehicles", []))
            ]
            case.body = {**case.body, "manufacturer": "ACME", **filing, "vehicles": vehicles}

        aims.append(registered_vins)
    if path == "/requests/{request_id}/decision":
        aims += [
            lambda i=i: (path_parameters(request_id=i)(), body(approve="all_eligible", reject=[], valid_until=None)())
            for i in world.submitted_ids
        ]
    if path == "/outlets":
        # The fields bound by rules made valid, the free text kept as generated.
        def well_formed_outlet(country: str) -> None:
            code = re.sub(r"[^A-Za-z0-9._-]", "", str(case.body.get("code", "")))[:60]
            texts = {k: case.body.get(k, "") or "x" for k in ("name", "provider", "address")}
            case.body = {
                **case.body,
                **{k: v if v.strip() else "x" for k, v in texts.items()},
                "code": f"F{code}",
                "country": country,
                "email": "",
                "valid_to": None,
            }

        # Not in KZ: the free text may hold characters no font has, and the submitted request's
        # letter (to KZ) would then be refused as unprintable.
        aims += [lambda c=c: well_formed_outlet(c) for c in ("UZ", "ae", " Th ")]
    if path == "/outlets/{code}":
        # Not KZ-ALMATY: an edit could deactivate it, and the submitted request's letter needs it.
        edits = {k: v for k, v in case.body.items() if k in ("city", "phone", "active")}
        aims += [
            lambda c=c: (path_parameters(code=c)(), setattr(case, "body", edits or {"active": True}))
            for c in world.outlet_codes
            if c != "KZ-ALMATY"
        ]
    return aims


@schema.hook
def map_case(context: Any, case: Any) -> Any:
    """Aim two positive examples in three at the world (a real id, number, code, manufacturer...),
    the way chosen by the example itself, so a replayed example is aimed the same way."""
    world = TARGET.world
    if world is None or not _is_positive(case):
        return case
    aims = _aimed(case, world)
    if aims:
        choice = zlib.crc32(repr(case).encode()) % (3 * len(aims))
        if choice < 2 * len(aims):
            aims[choice % len(aims)]()
    return case


# -- the fuzzing -------------------------------------------------------------------------------


def _record(world: World, test: str, case: Any) -> None:
    phase = case.meta.phase.name.value if case.meta is not None else "explicit"
    world.examples[(test, case.method.upper(), case.operation.path, phase)] += 1


def pick(case: Any, choices: Sequence[T]) -> T:
    """One of ``choices`` for this example, the same whenever the example is replayed. (Not a
    Hypothesis draw: schemathesis runs its coverage cases only for tests that draw nothing.)"""
    return choices[zlib.crc32(repr(case).encode()) % len(choices)]


@schema.parametrize()
def test_every_operation_answers_as_documented_when_fuzzed_with_a_permitted_role(case: Any, world: World) -> None:
    # A coverage case may use a method the path does not serve (it must get a 405): sent as it is.
    served = case.method.upper() == case.operation.method.upper()
    roles = allowed_roles(world.app, case.method, case.operation.path) if served else None
    # An example whose Authorization header schemathesis left out or spoilt on purpose is sent
    # as it is (``negative_data_rejection`` then demands a refusal).
    if roles is not None and not schema.is_security_param_negated(case):
        case.headers = {**(case.headers or {}), **_bearer(world.tokens[pick(case, roles)])}
    _record(world, "documented", case)
    with clock.frozen(TODAY):
        case.call_and_validate()


def _assert_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == ["application/json"]  # schemathesis: lower-case names, lists
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}


def _is_public(ctx: Any) -> bool:
    return ctx.operation.definition.raw.get("security") == []


# Refusals are decided before the data is looked at: valid data only, fewer examples.
REFUSAL_CONFIG = fuzzing_config(mode="positive", max_examples=10, coverage=False)
protected = schemathesis.openapi.from_dict(build_document(), config=REFUSAL_CONFIG).exclude(func=_is_public)
protected.app = TARGET


@protected.parametrize()
def test_every_protected_operation_refuses_a_call_without_a_valid_token_or_role(case: Any, world: World) -> None:
    roles = allowed_roles(world.app, case.method, case.operation.path)
    assert roles is not None, f"{case.operation.label} needs a token but its view checks no role"
    credentials: list[tuple[dict[str, str], int]] = [
        ({}, 401),
        ({"Authorization": "Bearer isr_not-a-token"}, 401),
        ({"Authorization": "Basic " + world.tokens[roles[0]]}, 401),
        *((_bearer(world.tokens[role]), 403) for role in Role if role not in roles),
    ]
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    headers, status = pick(case, credentials)
    case.headers = {**case.headers, **headers}
    _record(world, "refusals", case)
    with clock.frozen(TODAY):
        response = case.call()
    _assert_error(response, status)
    case.validate_response(
        response,
        checks=[
            schemathesis.checks.not_a_server_error,
            schemathesis.checks.status_code_conformance,
            schemathesis.checks.content_type_conformance,
            schemathesis.checks.response_schema_conformance,
        ],
    )


BODY_OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in build_document()["paths"].items()
    for method, operation in item.items()
    if "application/json" in operation.get("requestBody", {}).get("content", {})
)


@pytest.mark.parametrize(("method", "path"), BODY_OPERATIONS, ids=[f"{m} {p}" for m, p in BODY_OPERATIONS])
def test_unknown_body_fields_are_refused_with_a_422_naming_them(world: World, method: str, path: str) -> None:
    """The document says ``additionalProperties: false`` for every JSON body (which the fuzzing
    above does not try, see the module's docstring): a field the API does not know is refused,
    not ignored, so a client's misspelt field never passes silently."""
    roles = allowed_roles(world.app, method, path)
    assert roles is not None
    url = PREFIX + path.format(
        request_id=world.submitted_ids[0], code=world.outlet_codes[0], number=next(iter(world.letter_codes))
    )
    client = world.app.test_client()

    with clock.frozen(TODAY):
        response = client.open(url, method=method, json={"colour": "red"}, headers=_bearer(world.tokens[roles[0]]))

    assert response.status_code == 422, response.get_data(as_text=True)
    assert "colour" in [detail["field"] for detail in response.get_json()["error"]["details"]]
