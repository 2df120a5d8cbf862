"""`POST /api/v1/requests` with an `Idempotency-Key` files a request once, however often it is sent.

What is proved, through the real HTTP API on SQLite and PostgreSQL:
- the same key and body is answered with the first answer, byte for byte, with
  `Idempotent-Replayed: true`, and files nothing more: no request, vehicle, audit entry, mail
  or key row is added (counted before and after), also after the request was decided;
- the same JSON spaced or ordered differently is the same body; another body is a 422 that
  changes nothing; keys are their user's (a colleague's same key files a new request);
- a first attempt that fails (400 malformed JSON, 422 invalid fields or unknown manufacturer,
  a 500 in the middle of the filing's transaction) stores nothing and leaves the key usable;
- keys expire after 24 hours (the frozen clock): replayed at 23:59:59, filed anew at 24:00, and
  expired keys, this user's and others', are deleted when a key is next used;
- a malformed key (empty, too long, control or non-ASCII characters, sent twice) is a 400
  naming the header and the problem, before the body is read, and files nothing;
- the stored row holds the SHA-256 of the canonical body, the request id, the status and body;
  a body nested deeper than the JSON encoder goes is a 400, not a 500 (its fingerprint);
- the OpenAPI document describes the header (its schema accepts and refuses as the API does)
  and the replay header, and the answers (201, replay, 422, 400) satisfy their documented schemas.

And with real concurrency, on a database of its own:
- PostgreSQL: a retry while the first is still in flight (held deterministically on a row lock
  of the audit head by another connection) is a 409, whatever its body; once the first has
  committed, the replay, and a different body the 422;
- PostgreSQL and SQLite: eight threads released by a barrier with one key file exactly one
  request; every other answer is the byte-identical replay, a 409 (PostgreSQL) or a 503 busy
  (SQLite's single writer); one audit entry, the chain intact, one mail per recipient.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from issuer import clock, create_app
from issuer.config import Settings
from issuer.db import Database, make_engine
from issuer.errors import BadRequest
from issuer.migrate import upgrade
from issuer.models import (
    AuditEntry,
    AuditHead,
    Exporter,
    IdempotencyKey,
    LetterRequest,
    Manufacturer,
    OutboxMessage,
    RequestVehicle,
)
from issuer.services import accounts
from issuer.services.audit import verify_chain
from issuer.services.idempotency import fingerprint
from tests import factories
from tests.conftest import TEST_DATABASE_URL, _create_postgres_database, _drop_postgres_database
from tests.web.conftest import VIN_ACME, Caller, assert_error, caller, request_body, vehicle

URL = "/api/v1/requests"
HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
FILED_AT = dt.datetime(2026, 9, 15, 4, 0, tzinfo=dt.UTC)  # noon in China on the suite's TODAY


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def acme(session: Session) -> Manufacturer:
    manufacturer = factories.manufacturer(session, "ACME", wmis=("LGX",))
    factories.outlet(session, manufacturer, code="KZ-ALMATY", country="KZ")
    factories.user(session, "aftersales", manufacturer=manufacturer)  # is mailed about each new request
    return manufacturer


@pytest.fixture
def exporter_org(session: Session) -> Exporter:
    return factories.exporter(session, "EXP1")


@pytest.fixture
def clerk(session: Session, exporter_org: Exporter) -> Caller:
    return caller(session, "exporter", exporter=exporter_org)


def body(*vins: str, **extra: Any) -> dict[str, Any]:
    return request_body([vehicle(v) for v in vins or (VIN_ACME,)], manufacturer="ACME", **extra)


def post(client: FlaskClient, who: Caller, payload: Any, key: str | None = None, **headers: str) -> Any:
    sent = {**who.headers, **headers}
    if key is not None:
        sent[HEADER] = key
    if isinstance(payload, (bytes, str)):
        return client.post(URL, data=payload, headers=sent, content_type="application/json")
    return client.post(URL, json=payload, headers=sent)


def snapshot(session: Session) -> dict[str, int]:
    """Row counts of everything a filing writes, as the database holds them now."""
    session.expire_all()
    counted = (LetterRequest, RequestVehicle, AuditEntry, OutboxMessage, IdempotencyKey)
    return {model.__name__: session.scalar(select(func.count()).select_from(model)) or 0 for model in counted}


def key_rows(session: Session) -> list[IdempotencyKey]:
    session.expire_all()
    return list(session.scalars(select(IdempotencyKey).order_by(IdempotencyKey.id)))


def canonical_sha256(payload: Any) -> str:
    # Written out here rather than imported: the test states what the fingerprint is.
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# -- replay ----------------------------------------------------------------------------------


def test_same_key_and_body_replays_the_first_answer_and_files_nothing_more(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller
) -> None:
    key = str(uuid.uuid4())
    before = snapshot(session)

    first = post(client, clerk, body(), key)
    after_first = snapshot(session)
    again = post(client, clerk, body(), key)
    third = post(client, clerk, body(), key)

    assert first.status_code == 201, first.get_data(as_text=True)
    assert REPLAYED not in first.headers
    assert after_first == {
        **before,
        "LetterRequest": before["LetterRequest"] + 1,
        "RequestVehicle": before["RequestVehicle"] + 1,
        "AuditEntry": before["AuditEntry"] + 1,
        "OutboxMessage": before["OutboxMessage"] + 1,
        "IdempotencyKey": 1,
    }
    for replay in (again, third):
        assert replay.status_code == 201
        assert replay.headers[REPLAYED] == "true"
        assert replay.mimetype == "application/json"
        assert replay.get_data() == first.get_data()
    assert snapshot(session) == after_first
    [row] = key_rows(session)
    assert row.key == key
    assert row.fingerprint == canonical_sha256(body())
    assert row.request_id == first.get_json()["id"]
    assert row.response_status == 201
    assert row.response_body == first.get_json()
    assert row.created_at == clock.now_utc()


def test_the_same_json_spaced_and_ordered_differently_is_the_same_body(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller
) -> None:
    payload = body(reference="合同 2026/17")
    first = post(client, clerk, json.dumps(payload), "spacing")
    reordered = json.dumps(dict(reversed(payload.items())), indent=4, ensure_ascii=True)
    before = snapshot(session)

    replay = post(client, clerk, reordered.encode(), "spacing")

    assert first.status_code == 201, first.get_data(as_text=True)
    assert replay.status_code == 201
    assert replay.headers[REPLAYED] == "true"
    assert replay.get_data() == first.get_data()
    assert snapshot(session) == before


def test_a_replay_answers_as_filed_after_the_request_was_decided(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller
) -> None:
    first = post(client, clerk, body(), "decided-later")
    request_id = first.get_json()["id"]
    staff = caller(session, "aftersales", manufacturer=acme)
    decision = client.post(
        f"{URL}/{request_id}/decision",
        json={"approve": [], "reject": [{"vin": VIN_ACME, "reason": "not ours to cover"}]},
        headers=staff.headers,
    )
    assert decision.status_code == 200, decision.get_data(as_text=True)
    before = snapshot(session)

    replay = post(client, clerk, body(), "decided-later")

    assert replay.status_code == 201
    assert replay.get_data() == first.get_data()
    assert replay.get_json()["status"] == "submitted"
    assert client.get(f"{URL}/{request_id}", headers=clerk.headers).get_json()["status"] == "rejected"
    assert snapshot(session) == before


# -- another body, another user, another key ---------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"reference": "another contract"},
        {"application_date": "2026-10-02"},
        {"vehicles": [vehicle(VIN_ACME, destination="kz")]},  # the same after parsing, not the same JSON
        {"vehicles": [vehicle(VIN_ACME), vehicle(factories.make_vin("LGX", 2))]},
    ],
    ids=["reference", "date", "spelling", "vehicles"],
)
def test_the_same_key_with_another_body_is_refused_422_and_changes_nothing(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller, change: dict[str, Any]
) -> None:
    first = post(client, clerk, body(), "one-key")
    first_id = first.get_json()["id"]
    before = snapshot(session)
    rows_before = [(r.key, r.fingerprint, r.request_id) for r in key_rows(session)]

    refused = post(client, clerk, {**body(), **change}, "one-key")

    error = assert_error(refused, 422, "IDEMPOTENCY_KEY_REUSED")
    assert "different request body" in error["message"]
    assert f"request {first_id}" in error["message"]
    assert error["details"] == [{"field": HEADER, "message": "already used with a different request body"}]
    assert REPLAYED not in refused.headers
    assert snapshot(session) == before
    assert [(r.key, r.fingerprint, r.request_id) for r in key_rows(session)] == rows_before
    # The first body is still answered as before.
    assert post(client, clerk, body(), "one-key").get_data() == first.get_data()


def test_keys_are_the_users_own_so_a_colleague_with_the_same_key_files_a_new_request(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller, exporter_org: Exporter
) -> None:
    colleague = caller(session, "exporter", exporter=exporter_org)
    mine = post(client, clerk, body(), "shared-key")

    same_body = post(client, colleague, body(), "shared-key")
    other_body = post(client, caller(session, "exporter", exporter=exporter_org), body(reference="x"), "shared-key")

    assert mine.status_code == same_body.status_code == other_body.status_code == 201
    assert REPLAYED not in same_body.headers
    assert REPLAYED not in other_body.headers
    assert len({mine.get_json()["id"], same_body.get_json()["id"], other_body.get_json()["id"]}) == 3
    assert len(key_rows(session)) == 3


def test_keys_are_case_sensitive(client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller) -> None:
    upper = post(client, clerk, body(), "KEY-A")
    lower = post(client, clerk, body(reference="other"), "key-a")

    assert upper.status_code == lower.status_code == 201
    assert REPLAYED not in lower.headers
    assert upper.get_json()["id"] != lower.get_json()["id"]


def test_without_a_key_every_post_files_a_request(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller
) -> None:
    answers = [post(client, clerk, body()) for _ in range(2)]

    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].get_json()["id"] != answers[1].get_json()["id"]
    assert key_rows(session) == []


# -- failed attempts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failing", "status"),
    [
        (b'{"manufacturer": "ACME", "vehicles": [', 400),
        ({**body(), "application_date": "not a date"}, 422),
        ({**body(), "manufacturer": "NOBODY"}, 422),
    ],
    ids=["malformed-json", "invalid-field", "unknown-manufacturer"],
)
def test_a_failed_first_attempt_stores_nothing_and_leaves_the_key_usable(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller, failing: Any, status: int
) -> None:
    before = snapshot(session)

    failed = post(client, clerk, failing, "retry-me")
    assert_error(failed, status)
    assert snapshot(session) == before
    again = post(client, clerk, failing, "retry-me")  # the same mistake is refused the same way
    assert again.status_code == status
    assert again.get_data() == failed.get_data()
    corrected = post(client, clerk, body(), "retry-me")

    assert corrected.status_code == 201, corrected.get_data(as_text=True)
    assert REPLAYED not in corrected.headers
    assert snapshot(session)["LetterRequest"] == before["LetterRequest"] + 1
    assert [r.request_id for r in key_rows(session)] == [corrected.get_json()["id"]]


def test_a_filing_that_fails_after_its_key_was_written_leaves_neither_the_request_nor_the_key(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller
) -> None:
    # The audit entry is the filing's last write, after the key's row: without the chain's head
    # row it fails (a 500), and the whole transaction must go with it.
    head = session.get(AuditHead, 1)
    assert head is not None
    saved = (head.last_seq, head.last_hash)
    session.execute(text("DELETE FROM audit_head"))
    session.commit()
    before = snapshot(session)

    crashed = post(client, clerk, body(), "crash")

    assert_error(crashed, 500, "INTERNAL_ERROR")
    assert snapshot(session) == before
    session.execute(
        text("INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, :seq, :hash)"),
        {"seq": saved[0], "hash": saved[1]},
    )
    session.commit()
    retried = post(client, clerk, body(), "crash")
    assert retried.status_code == 201, retried.get_data(as_text=True)
    assert REPLAYED not in retried.headers
    assert snapshot(session)["LetterRequest"] == before["LetterRequest"] + 1


# -- expiry ------------------------------------------------------------------------------------


def test_a_key_is_replayed_for_24_hours_then_files_a_new_request(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller
) -> None:
    with clock.frozen(FILED_AT):
        first = post(client, clerk, body(), "daily")
    with clock.frozen(FILED_AT + dt.timedelta(hours=24) - dt.timedelta(seconds=1)):
        before = snapshot(session)
        late_replay = post(client, clerk, body(), "daily")
        late_other = post(client, clerk, body(reference="other"), "daily")
        assert snapshot(session) == before
    with clock.frozen(FILED_AT + dt.timedelta(hours=24)):
        expired = post(client, clerk, body(reference="other"), "daily")

    assert late_replay.status_code == 201
    assert late_replay.headers[REPLAYED] == "true"
    assert late_replay.get_data() == first.get_data()
    assert_error(late_other, 422, "IDEMPOTENCY_KEY_REUSED")
    assert expired.status_code == 201, expired.get_data(as_text=True)
    assert REPLAYED not in expired.headers
    assert expired.get_json()["id"] != first.get_json()["id"]
    [row] = key_rows(session)  # the expired row gave way to the new one
    assert row.request_id == expired.get_json()["id"]
    assert row.created_at == FILED_AT + dt.timedelta(hours=24)


def test_expired_keys_of_every_user_are_deleted_when_a_key_is_next_used(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller, exporter_org: Exporter
) -> None:
    colleague = caller(session, "exporter", exporter=exporter_org)
    with clock.frozen(FILED_AT):
        for n in range(3):
            post(client, colleague, body(reference=f"old {n}"), f"old-{n}")
    with clock.frozen(FILED_AT + dt.timedelta(hours=20)):
        recent = post(client, colleague, body(reference="recent"), "recent")
    assert len(key_rows(session)) == 4

    with clock.frozen(FILED_AT + dt.timedelta(hours=30)):
        post(client, clerk, body(reference="mine"), "mine")
        assert post(client, colleague, body(reference="recent"), "recent").headers[REPLAYED] == "true"

    assert sorted(r.key for r in key_rows(session)) == ["mine", "recent"]
    assert recent.status_code == 201


# -- malformed keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        ("  \t ", "is empty"),
        ("k" * 256, "is 256 characters long; at most 255"),
        ("tab\tinside", "U+0009"),
        ("bell\x07", "U+0007"),
        ("del\x7f", "U+007F"),
        ("clé", "U+00E9"),
        ("键".encode().decode("latin-1"), "U+0094"),  # UTF-8 bytes, as WSGI hands them over
    ],
    ids=["empty", "blank", "too-long", "tab", "control", "delete", "latin-1", "utf-8"],
)
def test_a_malformed_key_is_refused_400_naming_the_problem_before_the_body_is_read(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller, value: str, problem: str
) -> None:
    before = snapshot(session)

    valid_body = post(client, clerk, body(), value)
    broken_body = post(client, clerk, b"{not json", value)

    for answer in (valid_body, broken_body):
        error = assert_error(answer, 400, "BAD_REQUEST")
        assert error["message"].startswith(f"the {HEADER} header ")
        assert problem in error["message"]
        assert error["details"][0]["field"] == HEADER
    assert snapshot(session) == before


def test_two_key_headers_are_one_key_joined_by_a_comma(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller
) -> None:
    # WSGI (and HTTP intermediaries) join repeated fields with ", "; the joined value is the key.
    twice = [*clerk.headers.items(), (HEADER, "a"), (HEADER, "b")]

    first = client.post(URL, json=body(), headers=twice)
    again = client.post(URL, json=body(), headers=twice)

    assert first.status_code == 201, first.get_data(as_text=True)
    assert again.headers[REPLAYED] == "true"
    assert [r.key for r in key_rows(session)] == ["a, b"]


def test_the_fingerprint_of_a_body_nested_beyond_the_encoders_depth_is_a_400_not_an_error() -> None:
    # The JSON parser and encoder stop at different depths, which also depend on the stack they
    # run on: a body the parser just accepted must not make the fingerprint fail with a 500.
    nested: list[Any] = []
    for _ in range(5_000):
        nested = [nested]

    with pytest.raises(BadRequest, match="nested too deeply"):
        fingerprint({"vehicles": nested})
    assert fingerprint({"b": [1, "二"], "a": None}) == canonical_sha256({"a": None, "b": [1, "二"]})


@pytest.mark.parametrize(
    "value",
    [
        "k",
        "k" * 255,
        "".join(chr(c) for c in range(0x21, 0x7F)),  # every printable ASCII character
        "spaces inside are kept",
        '"8e03978e-40d5-43e8-bc93-6894a57f9324"',  # the draft's quoted form, an opaque key like any
    ],
    ids=["one", "255", "all-printable", "spaces", "quoted"],
)
def test_a_well_formed_key_files_once_and_replays(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller, value: str
) -> None:
    first = post(client, clerk, body(), value)
    padded = post(client, clerk, body(), f" \t{value} ")  # white space around a value is not part of it

    assert first.status_code == 201, first.get_data(as_text=True)
    assert padded.headers[REPLAYED] == "true"
    assert padded.get_data() == first.get_data()
    assert [r.key for r in key_rows(session)] == [value]


def test_only_exporters_may_send_a_key_and_others_are_refused_as_before(
    client: FlaskClient, session: Session, acme: Manufacturer
) -> None:
    staff = caller(session, "aftersales", manufacturer=acme)

    assert_error(post(client, staff, body(), "staff-key"), 403, "FORBIDDEN")
    assert_error(client.post(URL, json=body(), headers={HEADER: "anonymous"}), 401)
    assert key_rows(session) == []


# -- the document ------------------------------------------------------------------------------


def test_the_openapi_document_describes_the_key_and_the_answers_satisfy_it(
    client: FlaskClient, session: Session, acme: Manufacturer, clerk: Caller
) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/requests"]["post"]
    [parameter] = [p for p in operation["parameters"] if p["in"] == "header"]
    first = post(client, clerk, body(), "documented")
    replay = post(client, clerk, body(), "documented")
    reused = post(client, clerk, body(reference="other"), "documented")
    bad = post(client, clerk, body(), "tab\tinside")

    assert parameter["name"] == HEADER
    assert parameter["required"] is False
    assert operation["responses"]["201"]["headers"][REPLAYED]["schema"]["enum"] == ["true"]
    header_schema = OAS30Validator(parameter["schema"])
    assert header_schema.is_valid("documented")
    assert not header_schema.is_valid("k" * 256)
    assert not header_schema.is_valid("   ")
    assert not header_schema.is_valid("tab\tinside")
    for answer in (first, replay, reused, bad):
        status = str(answer.status_code)
        assert status in operation["responses"], status
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        OAS30Validator({"allOf": [schema], "components": document["components"]}).validate(answer.get_json())
    assert [a.status_code for a in (first, replay, reused, bad)] == [201, 201, 422, 400]


# -- real concurrency, on a database of its own ------------------------------------------------

THREADS = 8


@dataclass
class LiveApp:
    """The app on a database of its own (committed data, many connections), with one exporter."""

    app: Flask
    database: Database
    token: str
    backend: str

    def post(self, payload: dict[str, Any], key: str) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", HEADER: key}
        return self.app.test_client().post(URL, json=payload, headers=headers)

    def counts(self) -> dict[str, int]:
        with self.database.session() as session:
            return snapshot(session)


@contextmanager
def live_app(backend: str, tmp_path: Path) -> Iterator[LiveApp]:
    if backend == "sqlite":
        url, name = f"sqlite:///{tmp_path / 'live.db'}", None
    else:
        if not TEST_DATABASE_URL:
            pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL concurrency not tested")
        name, url = _create_postgres_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    database = Database(url, pool_size=THREADS + 2)
    settings = Settings(
        database_url=url,
        secret_key="test-secret-" + uuid.uuid4().hex,
        keys_dir=tmp_path / "keys",
        key_passphrase="test-passphrase",
        public_url="http://issuer.test",
        ratelimit_enabled=False,
    )
    try:
        app = create_app(settings, database=database)
        with database.session() as session:
            maker = factories.manufacturer(session, "ACME", wmis=("LGX",))
            factories.outlet(session, maker, country="KZ")
            factories.user(session, "aftersales", manufacturer=maker)
            clerk = factories.user(session, "exporter", exporter=factories.exporter(session, "EXP1"))
            token = factories.token(session, clerk)
        yield LiveApp(app=app, database=database, token=token, backend=backend)
    finally:
        database.engine.dispose()
        if name is not None:
            _drop_postgres_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveApp]:
    with live_app(request.param, tmp_path) as app:
        yield app


@pytest.fixture
def live_postgres(tmp_path: Path) -> Iterator[LiveApp]:
    with live_app("postgresql", tmp_path) as app:
        yield app


def test_threads_racing_with_one_key_file_exactly_one_request(live: LiveApp) -> None:
    before = live.counts()
    barrier = threading.Barrier(THREADS)

    def attempt(_: int) -> Any:
        barrier.wait()
        return live.post(body(), "raced")

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(attempt, range(THREADS)))

    filed = [a for a in answers if a.status_code == 201 and REPLAYED not in a.headers]
    assert len(filed) == 1, [(a.status_code, a.get_data(as_text=True)[:200]) for a in answers]
    others = [a for a in answers if a is not filed[0]]
    allowed_error = {"postgresql": (409, "IDEMPOTENCY_KEY_IN_FLIGHT"), "sqlite": (503, "BUSY")}[live.backend]
    for answer in others:
        if answer.status_code == 201:
            assert answer.headers[REPLAYED] == "true"
            assert answer.get_data() == filed[0].get_data()
        else:
            assert (answer.status_code, answer.get_json()["error"]["code"]) == allowed_error, answer.get_json()
    after = live.counts()
    assert after == {
        **before,
        "LetterRequest": before["LetterRequest"] + 1,
        "RequestVehicle": before["RequestVehicle"] + 1,
        "AuditEntry": before["AuditEntry"] + 1,
        "OutboxMessage": before["OutboxMessage"] + 1,
        "IdempotencyKey": 1,
    }
    # Every attempt that was not answered with the request is answered with it on a retry.
    assert live.post(body(), "raced").get_data() == filed[0].get_data()
    with live.database.session() as session:
        assert verify_chain(session).intact


def _waiting_on_a_lock(live: LiveApp) -> int:
    with live.database.engine.connect() as connection:
        return connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )


def test_a_retry_while_the_first_is_in_flight_is_409_and_afterwards_the_replay(live_postgres: LiveApp) -> None:
    live = live_postgres
    holder = live.database.engine.connect()
    holder.begin()
    # Another transaction holds the audit head: the first filing gets as far as its audit entry,
    # its last write, and waits there with the request and the key written but not committed.
    holder.execute(text("SELECT last_seq FROM audit_head WHERE id = 1 FOR UPDATE"))
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(live.post, body(), "slow")
        deadline = time.monotonic() + 30
        while _waiting_on_a_lock(live) == 0 and not in_flight.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not in_flight.done(), in_flight.result().get_data(as_text=True)
        assert _waiting_on_a_lock(live) == 1

        same = live.post(body(), "slow")
        different = live.post(body(reference="another"), "slow")
        during = live.counts()
        holder.rollback()
        holder.close()
        first = in_flight.result()

    for answer in (same, different):
        error = assert_error(answer, 409, "IDEMPOTENCY_KEY_IN_FLIGHT")
        assert "still being processed" in error["message"]
    assert during["LetterRequest"] == 0
    assert during["IdempotencyKey"] == 0  # written by the first, not yet committed
    assert first.status_code == 201, first.get_data(as_text=True)
    assert REPLAYED not in first.headers
    replay = live.post(body(), "slow")
    assert replay.headers[REPLAYED] == "true"
    assert replay.get_data() == first.get_data()
    assert_error(live.post(body(reference="another"), "slow"), 422, "IDEMPOTENCY_KEY_REUSED")
    assert live.counts()["LetterRequest"] == 1
