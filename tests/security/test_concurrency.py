"""Concurrency on PostgreSQL: what many simultaneous callers can and cannot do to the data.

Proved, each with real threads, each thread with its own connection from a real
``issuer.db.Database`` (the app's, or a session of it), all released together by a
``threading.Barrier``:

* 20 approvals of the same request through the HTTP API: one letter, valid, its PDF verifies; the
  other answers are 409 "already decided" or that same letter; nothing left pending; the letter
  rendered once (the others wait for it instead of rendering it again); the audit chain intact.
* 50 issuances at once (50 requests of one or two vehicles): 50 distinct numbers, 1..50 of the
  manufacturer's counter, every letter valid and its PDF verifying.
* Two requests for one VIN, and two requests overlapping in one VIN, approved at once: at most one
  valid letter covers the VIN; the other answer names ALREADY_COVERED (409 when it raced the
  other to the claim, 422 when it already saw the claim), its request stays undecided, nothing
  pending, and its other VIN can still be approved.
* Imports: two registry imports of overlapping files (other brands, dates, and rows in opposite
  orders; they deadlocked when the merge took rows in file order) and two outlet imports of
  overlapping files (the second failed on a duplicate code) end as one of the two serial orders
  would, each import's counts those of that order; an outlet import beside two edits of its
  outlet loses none of the three changes and numbers the versions without a gap; a registry
  import beside issuances ends as the file says and the letters stay whole; of two registry
  import jobs queued at once, the second is refused clearly and its upload discarded.

PostgreSQL only: SQLite has a single writer, so its transactions never interleave. Committed data
must be seen by several connections, so the module gets a database of its own rather than the
per-test rolled-back transaction, and each test a manufacturer of its own. The letters are kept
small (one or two vehicles) to keep the run bounded: rendering is what takes time.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from issuer import create_app
from issuer.config import Settings
from issuer.db import Database
from issuer.errors import Conflict
from issuer.migrate import upgrade
from issuer.models import (
    AuditEntry,
    CoveredVin,
    ImportJob,
    Letter,
    LetterRequest,
    LetterSequence,
    LetterVehicle,
    Manufacturer,
    Outlet,
    OutletVersion,
    RegisteredVehicle,
)
from issuer.services import audit, import_jobs
from issuer.services import letters as letter_service
from issuer.services.keys import generate_key
from issuer.services.outlets import import_outlets
from issuer.services.registry import import_vehicles
from tests import factories
from tests.conftest import TEST_DATABASE_URL, TODAY, _create_postgres_database, _drop_postgres_database

REGISTERED_ON = TODAY - dt.timedelta(days=20)
APPLYING_ON = TODAY + dt.timedelta(days=5)
MOST_THREADS = 50
# Each test's manufacturer has a WMI of its own (LAX, LBX, ...), so its VINs are its own.
WMI_LETTERS = iter("ABCDEFGHJKLMNPRSTUVWYZ")


@dataclass
class Site:
    """The real app on a PostgreSQL database of its own, and a manufacturer ready to issue."""

    app: Any
    database: Database
    maker_code: str
    maker_id: int
    vins: list[str]
    exporter_token: str
    staff_tokens: list[str]

    def session(self) -> Any:
        return self.database.sessions()

    def file(self, vins: list[str]) -> int:
        body = {
            "manufacturer": self.maker_code,
            "application_date": APPLYING_ON.isoformat(),
            "reference": "",
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
        filed = self.app.test_client().post("/api/v1/requests", json=body, headers=_auth(self.exporter_token))
        assert filed.status_code == 201, filed.json
        return int(filed.json["id"])

    def decide(self, request_id: int, token: str, approve: Any = "all_eligible") -> tuple[int, dict[str, Any]]:
        answer = self.app.test_client().post(
            f"/api/v1/requests/{request_id}/decision", json={"approve": approve}, headers=_auth(token)
        )
        return answer.status_code, answer.json


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Server:
    app: Any
    database: Database
    settings: Settings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real app on a PostgreSQL database of its own, for this module's tests."""
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL concurrency not tested")
    name, url = _create_postgres_database()
    database = Database(url, pool_size=MOST_THREADS + 4, max_overflow=0)
    try:
        upgrade(database.engine)
        settings = Settings(
            database_url=url,
            secret_key="test-secret-" + uuid.uuid4().hex,
            keys_dir=tmp_path_factory.mktemp("keys"),
            key_passphrase="test-passphrase",
            public_url="http://issuer.test",
            ratelimit_enabled=False,
        )
        app = create_app(settings, database=database)
        app.config["TESTING"] = True
        yield Server(app=app, database=database, settings=settings)
    finally:
        database.engine.dispose()
        _drop_postgres_database(name)


@pytest.fixture
def site(server: Server) -> Site:
    """A manufacturer of its own for each test, ready to issue: key, registry, outlet, staff."""
    with server.database.sessions() as session:
        wmi = f"L{next(WMI_LETTERS)}X"
        maker = factories.manufacturer(session, wmis=(wmi,))
        generate_key(
            session=session,
            manufacturer_code=maker.code,
            keys_dir=server.settings.keys_dir,
            passphrase=server.settings.seal_passphrase,
        )
        vins = factories.random_vins(wmi, 120, seed=23)
        factories.register(session, maker, vins)
        factories.outlet(session, maker, country="KZ")
        exporter = factories.exporter(session)
        clerk = factories.user(session, "exporter", exporter=exporter)
        staff = [factories.user(session, "aftersales", manufacturer=maker) for _ in range(2)]
        return Site(
            app=server.app,
            database=server.database,
            maker_code=maker.code,
            maker_id=maker.id,
            vins=vins,
            exporter_token=factories.token(session, clerk),
            staff_tokens=[factories.token(session, s) for s in staff],
        )


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(0..count-1)`` in ``count`` threads released at the same instant; return the
    results in order (an exception is returned as the result, to be asserted on)."""
    barrier = threading.Barrier(count, timeout=60)

    def run(index: int) -> Any:
        barrier.wait()
        try:
            return work(index)
        except Exception as exc:  # the test asserts on it
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


@pytest.fixture
def render_count(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the letters actually rendered (the real renderer runs; only the calls are counted)."""
    renders: Counter[str] = Counter()
    real = letter_service.render_letter
    lock = threading.Lock()

    def counting(content: Any, **kwargs: Any) -> Any:
        with lock:
            renders[content.number] += 1
        return real(content, **kwargs)

    monkeypatch.setattr(letter_service, "render_letter", counting)
    return renders


def assert_valid_and_verifying(site: Site, number: str) -> None:
    pdf = site.app.test_client().get(f"/api/v1/letters/{number}/pdf", headers=_auth(site.exporter_token))
    assert pdf.status_code == 200, number
    with site.session() as session:
        verification = letter_service.verify_pdf(session=session, pdf=pdf.data)
        assert verification.authentic, (number, verification.reasons)
        assert verification.letter_number == number
        assert verification.status == "valid"


def assert_nothing_pending_and_chain_intact(site: Site) -> None:
    with site.session() as session:
        assert session.scalar(select(func.count()).select_from(Letter).where(Letter.status == "pending")) == 0
        assert session.scalar(select(func.count()).select_from(Letter).where(Letter.pdf.is_(None))) == 0
        chain = audit.verify_chain(session)
        assert chain.intact, chain.problems


# -- issuance --------------------------------------------------------------------------------


def test_twenty_simultaneous_approvals_of_one_request_issue_one_letter_rendered_once(site, render_count):
    request_id = site.file(site.vins[:2])

    answers = together(20, lambda i: site.decide(request_id, site.staff_tokens[i % 2]))

    assert not [a for a in answers if isinstance(a, Exception)], answers
    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {200, 409}, answers
    numbers = {body["letter_number"] for status, body in answers if status == 200}
    assert len(numbers) == 1, answers
    for status, body in answers:
        if status == 409:
            assert body["error"]["code"] == "CONFLICT"
            assert "already decided" in body["error"]["message"]
    (number,) = numbers
    with site.session() as session:
        letters = session.scalars(select(Letter).where(Letter.manufacturer_id == site.maker_id)).all()
        assert [(letter.number, letter.status) for letter in letters] == [(number, "valid")]
        assert session.get(LetterRequest, request_id).status == "approved"
        covered = session.execute(
            select(CoveredVin.vin, CoveredVin.letter_id).where(CoveredVin.vin.in_(site.vins))
        ).all()
        assert sorted(covered) == sorted((vin, letters[0].id) for vin in site.vins[:2])
        actions = Counter(session.scalars(select(AuditEntry.action).where(AuditEntry.manufacturer_id == site.maker_id)))
        assert actions["letter.issued"] == 1
        assert actions["request.decided"] == 1
    assert render_count == {number: 1}
    assert_valid_and_verifying(site, number)
    assert_nothing_pending_and_chain_intact(site)


def test_fifty_simultaneous_issuances_take_fifty_consecutive_numbers_and_all_verify(site):
    requests = [site.file(site.vins[2 * i : 2 * i + 1 + i % 2]) for i in range(MOST_THREADS)]

    answers = together(MOST_THREADS, lambda i: site.decide(requests[i], site.staff_tokens[i % 2]))

    assert [status for status, _ in answers] == [200] * MOST_THREADS, answers
    numbers = [body["letter_number"] for _, body in answers]
    expected = {f"{site.maker_code}-{TODAY.year}-{serial:06d}" for serial in range(1, MOST_THREADS + 1)}
    assert set(numbers) == expected
    with site.session() as session:
        sequence = session.get(LetterSequence, (site.maker_id, TODAY.year))
        assert sequence.last_serial == MOST_THREADS
        by_request = dict(
            session.execute(
                select(Letter.request_id, Letter.number).where(Letter.manufacturer_id == site.maker_id)
            ).all()
        )
        assert by_request == {
            request_id: body["letter_number"] for request_id, (_, body) in zip(requests, answers, strict=True)
        }
        counts = dict(
            session.execute(
                select(Letter.number, func.count())
                .join(Letter.vehicles)
                .where(Letter.manufacturer_id == site.maker_id)
                .group_by(Letter.number)
            ).all()
        )
        assert counts == {body["letter_number"]: 1 + i % 2 for i, (_, body) in enumerate(answers)}
    for number in numbers:
        assert_valid_and_verifying(site, number)
    assert_nothing_pending_and_chain_intact(site)


def _covering_letters(site: Site, vin: str) -> list[str]:
    with site.session() as session:
        return list(
            session.scalars(
                select(Letter.number)
                .join(LetterVehicle, LetterVehicle.letter_id == Letter.id)
                .where(Letter.status == "valid", LetterVehicle.vin == vin)
            )
        )


def _assert_refused_as_covered(status: int, body: dict[str, Any]) -> None:
    """The loser's answer names ALREADY_COVERED: 409 when both reached the claim together (the
    covered_vins key refused the second), 422 when the other letter's claim was already there."""
    error = body["error"]
    if status == 409:
        assert error["code"] == "CONFLICT"
        assert error["details"] == {"reason": "ALREADY_COVERED"}
        assert "ALREADY_COVERED" in error["message"]
    else:
        assert status == 422, body
        assert "ALREADY_COVERED" in error["message"]
        assert any("ALREADY_COVERED" in detail.get("reasons", []) for detail in error["details"])


def test_two_simultaneous_requests_for_one_vin_never_both_end_in_a_valid_letter(site):
    outcomes: Counter[int] = Counter()
    for round_ in range(2):
        vin = site.vins[100 + round_]
        requests = [site.file([vin]) for _ in range(2)]

        answers = together(2, lambda i, requests=requests: site.decide(requests[i], site.staff_tokens[i]))

        winners = [i for i, (status, _) in enumerate(answers) if status == 200]
        assert len(winners) == 1, answers
        loser = 1 - winners[0]
        _assert_refused_as_covered(*answers[loser])
        outcomes[answers[loser][0]] += 1
        assert _covering_letters(site, vin) == [answers[winners[0]][1]["letter_number"]]
        with site.session() as session:
            assert session.get(LetterRequest, requests[loser]).status == "submitted"
            assert (
                session.scalar(select(func.count()).select_from(Letter).where(Letter.request_id == requests[loser]))
                == 0
            )
    assert sum(outcomes.values()) == 2
    assert_nothing_pending_and_chain_intact(site)


def test_two_simultaneous_approvals_overlapping_in_one_vin_leave_one_letter_on_it(site):
    for round_ in range(2):
        shared, own = site.vins[110 + round_], site.vins[113 + 2 * round_ : 115 + 2 * round_]
        requests = [site.file([own[i], shared]) for i in range(2)]

        def approve(i: int, requests: list[int] = requests, own: list[str] = own, shared: str = shared) -> Any:
            return site.decide(requests[i], site.staff_tokens[i], [own[i], shared])

        answers = together(2, approve)

        winners = [i for i, (status, _) in enumerate(answers) if status == 200]
        assert len(winners) == 1, answers
        winner, loser = winners[0], 1 - winners[0]
        _assert_refused_as_covered(*answers[loser])
        assert _covering_letters(site, shared) == [answers[winner][1]["letter_number"]]
        assert _covering_letters(site, own[loser]) == []
        with site.session() as session:
            assert session.get(LetterRequest, requests[loser]).status == "submitted"
        # Nothing of the loser stays blocked: its own VIN is approved on its own.
        status, body = site.decide(requests[loser], site.staff_tokens[0], [own[loser]])
        assert status == 200, body
        assert _covering_letters(site, own[loser]) == [body["letter_number"]]
    assert_nothing_pending_and_chain_intact(site)


# -- imports ---------------------------------------------------------------------------------

Registry = dict[str, tuple[str, str, dt.date | None]]  # vin -> (brand, model, production date)


def _write_csv(path: Path, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _registry_file(path: Path, vins: list[str], brand: str, model: str, produced: dt.date) -> Path:
    rows = [(vin, brand, model, produced.isoformat()) for vin in vins]
    return _write_csv(path, ("vin", "brand", "model", "production_date"), rows)


def _apply_registry(state: Registry, vins: list[str], brand: str, model: str, produced: dt.date) -> tuple[int, ...]:
    """What importing the file into ``state`` does, serially: (added, updated, unchanged)."""
    added = updated = 0
    for vin in vins:
        before = state.get(vin)
        if before is None:
            added += 1
        elif before != (brand, model, produced):
            updated += 1
        state[vin] = (brand, model, produced)
    return added, updated, len(vins) - added - updated


def _registry_of(site: Site) -> Registry:
    with site.session() as session:
        rows = session.execute(
            select(
                RegisteredVehicle.vin,
                RegisteredVehicle.brand,
                RegisteredVehicle.model,
                RegisteredVehicle.production_date,
            ).where(RegisteredVehicle.manufacturer_id == site.maker_id)
        )
        return {vin: (brand, model, produced) for vin, brand, model, produced in rows}


def _one_serial_order(results: list[Any], final: Any, orders: dict[str, tuple[list[Any], Any]]) -> str:
    """The serial order (by name) whose per-import results and final state these are."""
    matching = [name for name, (expected, state) in orders.items() if results == expected and final == state]
    assert matching, {"results": results, "orders": {name: expected for name, (expected, _) in orders.items()}}
    return matching[0]


def test_two_simultaneous_registry_imports_of_overlapping_files_end_as_one_serial_order(site, tmp_path):
    # Files this long, sharing 8,000 VINs in opposite orders, deadlocked most times when the
    # merge took the rows in file order.
    fresh = [vin for vin in factories.random_vins(site.vins[0][:3], 20_120, seed=5) if vin not in set(site.vins)]
    first_vins, second_vins = fresh[:14_000], fresh[6_000:20_000][::-1]
    for round_ in range(3):
        files = [
            (first_vins, f"Alpha{round_}", "A1", dt.date(2025, 3, 1 + round_)),
            (second_vins, f"Beta{round_}", "B2", dt.date(2025, 4, 1 + round_)),
        ]
        paths = [_registry_file(tmp_path / f"registry-{round_}-{i}.csv", *file) for i, file in enumerate(files)]
        before = _registry_of(site)
        orders = {}
        for name, sequence in (("first, second", (0, 1)), ("second, first", (1, 0))):
            state = dict(before)
            counts = {i: _apply_registry(state, *files[i]) for i in sequence}
            orders[name] = ([counts[0], counts[1]], state)

        def run(i: int, paths: list[Path] = paths) -> tuple[int, ...]:
            with site.session() as session:
                result = import_vehicles(session=session, manufacturer_code=site.maker_code, path=paths[i])
            return result.added, result.updated, result.unchanged

        results = together(2, run)

        assert not [r for r in results if isinstance(r, Exception)], results
        _one_serial_order(results, _registry_of(site), orders)
    with site.session() as session:
        imports = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.manufacturer_id == site.maker_id, AuditEntry.action == "vehicles.imported")
        )
        assert imports == 6
        assert audit.verify_chain(session).intact


UNUSED = ("", "", "")  # phone, email, brands
OUTLET_HEADER = ("code", "country", "name", "provider", "address", "city", "phone", "email", "brands", "valid_from")


def _outlet_rows(codes: list[str], label: str) -> list[tuple[str, ...]]:
    return [
        (
            code,
            "KZ",
            f"{label} service {code}",
            f"{label} LLP",
            f"{code} {label} St",
            "Almaty",
            "",
            "",
            "",
            "2025-01-01",
        )
        for code in codes
    ]


def _apply_outlets(state: dict[str, tuple[str, ...]], rows: list[tuple[str, ...]]) -> tuple[int, ...]:
    added = updated = 0
    for row in rows:
        before = state.get(row[0])
        if before is None:
            added += 1
        elif before != row:
            updated += 1
        state[row[0]] = row
    return added, updated, len(rows) - added - updated


def test_two_simultaneous_outlet_imports_of_overlapping_files_end_as_one_serial_order(site, tmp_path):
    codes = [f"KZ-{n:03d}" for n in range(60)]
    for round_ in range(2):
        files = [_outlet_rows(codes[:40], f"Alpha{round_}"), _outlet_rows(codes[20:][::-1], f"Beta{round_}")]
        paths = [
            _write_csv(tmp_path / f"outlets-{round_}-{i}.csv", OUTLET_HEADER, rows) for i, rows in enumerate(files)
        ]
        with site.session() as session:
            before = {
                o.code: (o.code, o.country, o.name, o.provider, o.address, o.city, "", "", "", "2025-01-01")
                for o in session.scalars(
                    select(Outlet).where(Outlet.manufacturer_id == site.maker_id, Outlet.code.in_(codes))
                )
            }
        orders = {}
        for name, sequence in (("first, second", (0, 1)), ("second, first", (1, 0))):
            state = dict(before)
            counts = {i: _apply_outlets(state, files[i]) for i in sequence}
            orders[name] = ([counts[0], counts[1]], state)

        def run(i: int, paths: list[Path] = paths) -> tuple[int, ...]:
            with site.session() as session:
                result = import_outlets(session=session, manufacturer_code=site.maker_code, path=paths[i], actor="t")
            return result.added, result.updated, result.unchanged

        results = together(2, run)

        assert not [r for r in results if isinstance(r, Exception)], results
        with site.session() as session:
            outlets = session.scalars(
                select(Outlet).where(Outlet.manufacturer_id == site.maker_id, Outlet.code.in_(codes))
            ).all()
            final = {
                o.code: (o.code, o.country, o.name, o.provider, o.address, o.city, "", "", "", "2025-01-01")
                for o in outlets
            }
            _one_serial_order(results, final, orders)
            for outlet in outlets:  # each change is one version, numbered without gaps, the last one live
                versions = session.scalars(
                    select(OutletVersion).where(OutletVersion.outlet_id == outlet.id).order_by(OutletVersion.version)
                ).all()
                assert [v.version for v in versions] == list(range(1, outlet.version + 1))
                assert (versions[-1].name, versions[-1].address) == (outlet.name, outlet.address)
    with site.session() as session:
        assert audit.verify_chain(session).intact


def test_a_registry_import_beside_issuances_ends_as_the_file_and_the_letters_stay_whole(site, tmp_path):
    issued_vins = site.vins[:3]
    requests = [site.file([vin]) for vin in issued_vins]
    newcomers = [v for v in factories.random_vins(site.vins[0][:3], 2_100, seed=77) if v not in set(site.vins)][:2_000]
    # The file keeps every registered VIN's brand and model (so the verdicts stay what they were)
    # and moves its production date, and adds 2,000 VINs.
    path = _registry_file(tmp_path / "registry.csv", site.vins + newcomers, "Example", "E1", dt.date(2025, 6, 1))

    def work(i: int) -> Any:
        if i == 0:
            with site.session() as session:
                result = import_vehicles(session=session, manufacturer_code=site.maker_code, path=path)
            return result.added, result.updated, result.unchanged
        return site.decide(requests[i - 1], site.staff_tokens[i % 2])

    imported, *decisions = together(1 + len(requests), work)

    assert imported == (2_000, len(site.vins), 0)
    assert _registry_of(site) == {vin: ("Example", "E1", dt.date(2025, 6, 1)) for vin in site.vins + newcomers}
    assert [status for status, _ in decisions] == [200] * len(requests), decisions
    for vin, (_, body) in zip(issued_vins, decisions, strict=True):
        assert _covering_letters(site, vin) == [body["letter_number"]]
        assert_valid_and_verifying(site, body["letter_number"])
    assert_nothing_pending_and_chain_intact(site)


def test_of_two_registry_import_jobs_queued_at_once_the_second_is_refused(site, tmp_path):
    newcomers = [v for v in factories.random_vins(site.vins[0][:3], 150, seed=91) if v not in set(site.vins)][:100]
    uploads = [tmp_path / f"upload-{i}.csv" for i in range(2)]
    for i, upload in enumerate(uploads):
        _registry_file(upload, newcomers, f"Brand{i}", "M", dt.date(2025, 2, 1))
    imports_dir = tmp_path / "imports"

    def queue(i: int) -> int:
        with site.session() as session:
            maker = session.scalar(select(Manufacturer).where(Manufacturer.id == site.maker_id))
            with uploads[i].open("rb") as stream:
                stored = import_jobs.store_upload(stream, directory=imports_dir, filename=uploads[i].name)
            try:
                job = import_jobs.create_vehicle_import(
                    session=session,
                    manufacturer=maker,
                    stored=stored,
                    filename=uploads[i].name,
                    skip_invalid=False,
                    actor="staff@example.test",
                )
            except Conflict:
                import_jobs.discard_file(stored.path)
                raise
            return job.id

    outcomes = together(2, queue)

    queued = [o for o in outcomes if isinstance(o, int)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(queued) == 1, outcomes
    assert len(refused) == 1, outcomes
    assert "another import of the registry" in refused[0].message
    assert refused[0].details["file"] == [refused[0].message]
    with site.session() as session:
        jobs = session.scalars(select(ImportJob).where(ImportJob.manufacturer_id == site.maker_id)).all()
        assert [(job.id, job.state) for job in jobs] == [(queued[0], "queued")]
    import_jobs.run_vehicle_import(site.database, queued[0], commit_progress=True)
    with site.session() as session:
        job = session.get(ImportJob, queued[0])
        assert (job.state, job.result["added"]) == ("done", 100)
        assert not Path(job.stored_path).exists()
    assert sorted(p.name for p in imports_dir.iterdir()) == []  # the refused upload was discarded too


def test_an_outlet_import_beside_two_edits_of_its_outlet_loses_no_change(site, tmp_path):
    with site.session() as session:
        outlet = session.scalar(select(Outlet).where(Outlet.manufacturer_id == site.maker_id))
        code, original = outlet.code, {"name": outlet.name, "phone": outlet.phone, "city": outlet.city}
        row = (code, "KZ", "Imported name", outlet.provider, outlet.address, outlet.city, outlet.phone, "", "")
    path = _write_csv(tmp_path / "outlets.csv", OUTLET_HEADER, [(*row, "2025-01-01")])
    # What each of the three writes sets (the file sets every field: phone and city as they were).
    changes = [
        {"name": "Imported name", "phone": original["phone"], "city": original["city"]},
        {"phone": "+7 701 111 1111"},
        {"city": "Astana"},
    ]

    def work(i: int) -> Any:
        if i == 0:
            with site.session() as session:
                result = import_outlets(session=session, manufacturer_code=site.maker_code, path=path, actor="t")
            return result.updated
        answer = site.app.test_client().patch(
            f"/api/v1/outlets/{code}", json=changes[i], headers=_auth(site.staff_tokens[0])
        )
        return answer.status_code, answer.json

    imported, *patched = together(3, work)

    assert imported == 1, imported
    assert [status for status, _ in patched] == [200, 200], patched
    with site.session() as session:
        outlet = session.scalar(select(Outlet).where(Outlet.manufacturer_id == site.maker_id, Outlet.code == code))
        versions = session.scalars(
            select(OutletVersion).where(OutletVersion.outlet_id == outlet.id).order_by(OutletVersion.version)
        ).all()
        assert [v.version for v in versions] == [1, 2, 3, 4]
        assert (versions[-1].name, versions[-1].phone, versions[-1].city) == (outlet.name, outlet.phone, outlet.city)
        assert audit.verify_chain(session).intact
    # The history is the three writes applied one after the other, each once, in some order:
    # each version is the one before it with exactly one write's fields, none lost or mixed.
    history = [{"name": v.name, "phone": v.phone, "city": v.city} for v in versions]
    assert history[0] == original
    applied = []
    for before, after in itertools.pairwise(history):
        writes = [i for i, change in enumerate(changes) if after == {**before, **change} and i not in applied]
        assert writes, (before, after)
        applied.append(writes[0])
    assert sorted(applied) == [0, 1, 2]
