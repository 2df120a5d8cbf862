"""Crash safety of issuance: a process killed (SIGKILL) at any step of it leaves either no letter
or a complete one, and the next attempt completes.

For each step of issuance listed in :mod:`tests.security.crash_child` (16 of them, from the
request's row lock to just after the completion's COMMIT), on a SQLite file database and on
PostgreSQL, a child process — the real app on the same database — approves a request and sends
itself SIGKILL at that step. The child is a separate process forked from a server that has
already imported the app (multiprocessing's ``forkserver``), so the kill is real and each child
starts in a fraction of a second instead of importing WeasyPrint and pyHanko again.

After the kill, the parent reads the database and finds exactly one of three states, the one
the step implies:

* **nothing** (killed before the reservation's COMMIT): the request is still submitted and
  undecided, no letter row, no VIN claimed, the counter where it was;
* **pending** (killed between the two COMMITs): one pending letter with no PDF, no seal, no issue
  date, holding its VINs and the next number — and invisible: not in the API's letter lists,
  404 from the API's letter and PDF, unknown to verification by number and code (API and page),
  absent from the letters pages, announced by no mail, issued by no audit entry;
* **issued** (killed after the completion's COMMIT): a valid letter whose PDF verifies.

In every state no letter is valid without its PDF and no PDF sits on a letter that is not valid,
and the audit chain is intact. Then the parent makes the same decision call again: it completes
a pending letter with its number, issues a new one where nothing was kept, and answers 409 where
the letter was issued; either way the request ends with one valid letter whose PDF verifies, and
the manufacturer's counter has moved by exactly one (numbers are neither reused nor skipped: a
number not committed was never given).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import multiprocessing
import re
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, or_, select

from issuer import clock, create_app
from issuer.config import Settings
from issuer.db import Database
from issuer.migrate import upgrade
from issuer.models import AuditEntry, CoveredVin, Letter, LetterRequest, LetterSequence, OutboxMessage
from issuer.services import audit
from issuer.services import letters as letter_service
from issuer.services.keys import generate_key
from tests import factories
from tests.conftest import TEST_DATABASE_URL, TODAY, _create_postgres_database, _drop_postgres_database
from tests.security import crash_child

NOTHING, PENDING, ISSUED = "nothing", "pending", "issued"
# What a kill at each step leaves: the reservation's COMMIT and the completion's divide them.
_RESERVED = crash_child.CRASH_POINTS.index("reservation_committed")
_ISSUED = crash_child.CRASH_POINTS.index("completion_committed")
LEFT_BEHIND = {
    point: NOTHING if index < _RESERVED else PENDING if index < _ISSUED else ISSUED
    for index, point in enumerate(crash_child.CRASH_POINTS)
}
CHILD_TIMEOUT = 120
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


@dataclass
class Plant:
    """One database (SQLite file or PostgreSQL), the parent's app on it, and a manufacturer
    ready to issue, with the accounts the checks need."""

    url: str
    database: Database
    app: Any
    settings: Settings
    maker_code: str
    maker_id: int
    vins: Iterator[str]
    exporter_token: str
    staff_token: str
    staff_page: Any  # a test client signed in as after-sales staff
    forks: Any  # the multiprocessing context the children are forked from
    numbers_seen: set[str] = field(default_factory=set)

    def session(self) -> Any:
        return self.database.sessions()

    def get(self, path: str, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self.exporter_token}"}
        return self.app.test_client().get(path, headers=headers)

    def file(self, vins: list[str]) -> int:
        body = {
            "manufacturer": self.maker_code,
            "application_date": (TODAY + dt.timedelta(days=5)).isoformat(),
            "reference": "",
            "vehicles": [
                {
                    "vin": vin,
                    "brand": "Example",
                    "model": "E1",
                    "registration_date": (TODAY - dt.timedelta(days=20)).isoformat(),
                    "destination": "KZ",
                }
                for vin in vins
            ],
        }
        filed = self.app.test_client().post(
            "/api/v1/requests", json=body, headers={"Authorization": f"Bearer {self.exporter_token}"}
        )
        assert filed.status_code == 201, filed.json
        return int(filed.json["id"])

    def decide(self, request_id: int) -> Any:
        return self.app.test_client().post(
            f"/api/v1/requests/{request_id}/decision",
            json={"approve": "all_eligible"},
            headers={"Authorization": f"Bearer {self.staff_token}"},
        )

    def counter(self) -> int:
        with self.session() as session:
            sequence = session.get(LetterSequence, (self.maker_id, TODAY.year))
            return sequence.last_serial if sequence is not None else 0

    def crash(self, crash_point: str, request_id: int) -> int | None:
        """Run the decision in a child process that kills itself at ``crash_point``; its exit code."""
        child = self.forks.Process(
            target=crash_child.run,
            kwargs={
                "crash_point": crash_point,
                "database_url": self.url,
                "keys_dir": str(self.settings.keys_dir),
                "passphrase": self.settings.seal_passphrase,
                "token": self.staff_token,
                "request_id": request_id,
                "today": TODAY.isoformat(),
            },
        )
        child.start()
        child.join(CHILD_TIMEOUT)
        if child.is_alive():
            child.kill()
            child.join()
            pytest.fail(f"the child at {crash_point} did not end within {CHILD_TIMEOUT} s")
        return child.exitcode


def _sign_in(app: Any, email: str) -> Any:
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    match = CSRF.search(client.get("/login").get_data(as_text=True))
    assert match, "the login page has no CSRF token"
    answer = client.post(
        "/login", data={"email": email, "password": factories.PASSWORD, "csrf_token": match.group(1) or match.group(2)}
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client


@pytest.fixture(scope="module")
def forks() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.security.crash_child"])
    return context


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def plant(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, forks: Any) -> Iterator[Plant]:
    folder = tmp_path_factory.mktemp("crash")
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'issuer.db'}"
    elif not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set: crash safety on PostgreSQL not tested")
    else:
        pg_name, url = _create_postgres_database()
    database = Database(url)
    try:
        upgrade(database.engine)
        settings = Settings(
            database_url=url,
            secret_key="test-secret-" + uuid.uuid4().hex,
            keys_dir=folder / "keys",
            key_passphrase="test-passphrase",
            public_url="http://issuer.test",
            ratelimit_enabled=False,
        )
        app = create_app(settings, database=database)
        app.config["TESTING"] = True
        # The tests' clock is frozen per test; the key must already be valid on that day.
        with clock.frozen(TODAY), database.sessions() as session:
            maker = factories.manufacturer(session, wmis=("LGX",))
            generate_key(
                session=session,
                manufacturer_code=maker.code,
                keys_dir=settings.keys_dir,
                passphrase=settings.seal_passphrase,
            )
            vins = factories.random_vins("LGX", 2 * len(crash_child.CRASH_POINTS), seed=31)
            factories.register(session, maker, vins)
            factories.outlet(session, maker, country="KZ")
            exporter = factories.exporter(session)
            clerk = factories.user(session, "exporter", exporter=exporter)
            staff = factories.user(session, "aftersales", manufacturer=maker)
            yield Plant(
                url=url,
                database=database,
                app=app,
                settings=settings,
                maker_code=maker.code,
                maker_id=maker.id,
                vins=iter(vins),
                exporter_token=factories.token(session, clerk),
                staff_token=factories.token(session, staff),
                staff_page=_sign_in(app, staff.email),
                forks=forks,
            )
    finally:
        database.engine.dispose()
        if pg_name is not None:
            _drop_postgres_database(pg_name)


# -- what the parent finds -------------------------------------------------------------------


def _state_of(plant: Plant, request_id: int) -> tuple[str, Letter | None]:
    with plant.session() as session:
        request = session.get(LetterRequest, request_id)
        letters = session.scalars(select(Letter).where(Letter.request_id == request_id)).all()
        if not letters:
            assert request.status == "submitted"
            return NOTHING, None
        assert len(letters) == 1, [(letter.number, letter.status) for letter in letters]
        assert request.status == "approved"
        letter = letters[0]
        assert letter.status in (PENDING, "valid"), letter.status
        return (PENDING if letter.status == PENDING else ISSUED), letter


def _assert_no_partial_letter_anywhere(plant: Plant) -> None:
    """No valid letter without its PDF, no PDF (or seal) on a letter that is not issued."""
    with plant.session() as session:
        partial = session.scalars(
            select(Letter.number).where(
                or_(
                    (Letter.status == "valid") & (Letter.pdf.is_(None) | Letter.pdf_sha256.is_(None)),
                    (Letter.status == PENDING)
                    & (
                        Letter.pdf.is_not(None)
                        | Letter.pdf_sha256.is_not(None)
                        | Letter.issued_at.is_not(None)
                        | Letter.seal_key_id.is_not(None)
                    ),
                )
            )
        ).all()
        assert partial == []
        chain = audit.verify_chain(session)
        assert chain.intact, chain.problems


def _assert_nothing_kept(plant: Plant, request_id: int, vins: list[str], counter_before: int) -> None:
    with plant.session() as session:
        request = session.get(LetterRequest, request_id)
        assert (request.decided_at, request.decided_by) == (None, None)
        assert [v.decision for v in request.vehicles] == [None] * len(vins)
        assert session.scalars(select(CoveredVin.vin).where(CoveredVin.vin.in_(vins))).all() == []
        decided = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "request.decided", AuditEntry.object_id == str(request_id))
        )
        assert decided == 0
    assert plant.counter() == counter_before


def _assert_pending_and_invisible(plant: Plant, letter: Letter, vins: list[str], counter_before: int) -> None:
    number = letter.number
    assert plant.counter() == counter_before + 1
    assert number.endswith(f"-{counter_before + 1:06d}")
    with plant.session() as session:
        covered = session.execute(select(CoveredVin.vin, CoveredVin.letter_id).where(CoveredVin.vin.in_(vins))).all()
        assert sorted(covered) == sorted((vin, letter.id) for vin in vins)
        issued = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                or_(
                    (AuditEntry.action == "letter.issued") & (AuditEntry.object_id == number),
                    (AuditEntry.action == "key.used") & (AuditEntry.details["letter"].as_string() == number),
                )
            )
        )
        assert issued == 0
        mail = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(or_(OutboxMessage.subject.contains(number), OutboxMessage.body.contains(number)))
        )
        assert mail == 0
    for token in (plant.exporter_token, plant.staff_token):
        listed = plant.get("/api/v1/letters?limit=500", token)
        assert listed.status_code == 200
        assert number not in [item["number"] for item in listed.json["letters"]]
        assert plant.get(f"/api/v1/letters/{number}", token).status_code == 404
        assert plant.get(f"/api/v1/letters/{number}/pdf", token).status_code == 404
    by_code = plant.app.test_client().get(f"/api/v1/verify/{number}?code={letter.verification_code}")
    unknown = plant.app.test_client().get(f"/api/v1/verify/{number}X?code={letter.verification_code}")
    assert (by_code.status_code, by_code.json) == (404, unknown.json)
    page = plant.app.test_client().get(f"/verify/{number}?code={letter.verification_code}")
    assert page.status_code == 404
    assert plant.staff_page.get(f"/letters/{number}").status_code == 404
    assert plant.staff_page.get(f"/letters/{number}/pdf").status_code == 404
    letters_page = plant.staff_page.get("/letters")
    assert letters_page.status_code == 200
    assert number not in letters_page.get_data(as_text=True)


def _assert_issued_and_verifying(plant: Plant, number: str) -> None:
    pdf = plant.get(f"/api/v1/letters/{number}/pdf")
    assert pdf.status_code == 200
    with plant.session() as session:
        letter = session.scalar(select(Letter).where(Letter.number == number))
        assert letter.status == "valid"
        assert letter.issued_at is not None
        assert letter.pdf_sha256 == hashlib.sha256(pdf.data).hexdigest()
        verification = letter_service.verify_pdf(session=session, pdf=pdf.data)
        assert verification.authentic, verification.reasons
        assert (verification.letter_number, verification.status) == (number, "valid")
        issued = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "letter.issued", AuditEntry.object_id == number)
        )
        assert issued == 1


# -- the test --------------------------------------------------------------------------------


@pytest.mark.parametrize("crash_point", crash_child.CRASH_POINTS)
def test_a_kill_at_any_step_of_issuance_leaves_no_letter_or_a_whole_one_and_the_next_attempt_completes(
    plant, crash_point
):
    vins = list(itertools.islice(plant.vins, 1 + crash_child.CRASH_POINTS.index(crash_point) % 2))
    request_id = plant.file(vins)
    counter_before = plant.counter()

    exit_code = plant.crash(crash_point, request_id)

    assert exit_code == -signal.SIGKILL, f"the child was not killed at {crash_point} (exit code {exit_code})"
    state, letter = _state_of(plant, request_id)
    assert state == LEFT_BEHIND[crash_point]
    _assert_no_partial_letter_anywhere(plant)
    if state == NOTHING:
        _assert_nothing_kept(plant, request_id, vins, counter_before)
    elif state == PENDING:
        _assert_pending_and_invisible(plant, letter, vins, counter_before)
    else:
        _assert_issued_and_verifying(plant, letter.number)

    again = plant.decide(request_id)

    if state == ISSUED:
        assert again.status_code == 409, again.json
        assert "already decided" in again.json["error"]["message"]
        number = letter.number
    else:
        assert again.status_code == 200, again.json
        number = again.json["letter_number"]
        if state == PENDING:
            assert number == letter.number  # the reservation is completed, not replaced
    _assert_issued_and_verifying(plant, number)
    _assert_no_partial_letter_anywhere(plant)
    assert plant.counter() == counter_before + 1
    assert number.endswith(f"-{counter_before + 1:06d}")
    assert number not in plant.numbers_seen
    plant.numbers_seen.add(number)
    with plant.session() as session:
        assert session.scalar(select(func.count()).select_from(Letter).where(Letter.request_id == request_id)) == 1
        covered = session.execute(select(CoveredVin.vin).where(CoveredVin.vin.in_(vins))).scalars().all()
        assert sorted(covered) == sorted(vins)
