"""Concurrent issuance on PostgreSQL: distinct numbers, no partial letters, one letter per VIN.

These tests need committed data seen by several connections, so they use a database of their
own rather than the per-test rolled-back transaction.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from issuer.db import make_engine
from issuer.domain.eligibility import VehicleDeclaration
from issuer.errors import IssuerError
from issuer.migrate import upgrade
from issuer.models import Letter, LetterRequest, User
from issuer.sealing.signer import PadesSealer
from issuer.services.keys import generate_key
from issuer.services.letters import Issuance, decide_request
from issuer.services.requests import submit_request
from tests import factories
from tests.conftest import TEST_DATABASE_URL, TODAY, _create_postgres_database, _drop_postgres_database

CONCURRENT = 20


@pytest.fixture
def pg_sessions(tmp_path):
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL concurrency not tested")
    name, url = _create_postgres_database()
    engine = make_engine(url, pool_size=CONCURRENT + 2)
    try:
        upgrade(engine)
        yield sessionmaker(bind=engine, expire_on_commit=False)
    finally:
        engine.dispose()
        _drop_postgres_database(name)


def _set_up(sessions, keys_dir, vin_count):
    with sessions() as session:
        maker = factories.manufacturer(session, wmis=("LGX",))
        generate_key(session=session, manufacturer_code=maker.code, keys_dir=keys_dir, passphrase="p")
        vins = factories.random_vins("LGX", vin_count, seed=11)
        factories.register(session, maker, vins)
        factories.outlet(session, maker, country="KZ")
        exporter = factories.exporter(session)
        clerk = factories.user(session, "exporter", exporter=exporter)
        staff = [factories.user(session, "aftersales", manufacturer=maker) for _ in range(2)]
        return maker.code, vins, clerk.id, [s.id for s in staff]


def _file(sessions, maker_code, clerk_id, vins):
    with sessions() as session:
        clerk = session.get(User, clerk_id)
        request, _ = submit_request(
            session=session,
            user=clerk,
            manufacturer_code=maker_code,
            application_date=TODAY + dt.timedelta(days=5),
            reference="",
            vehicles=[VehicleDeclaration(v, "Example", "E1", TODAY - dt.timedelta(days=20), "KZ") for v in vins],
        )
        return request.id


def _decide(sessions, issuance, staff_id, request_id, barrier):
    barrier.wait()
    with sessions() as session:
        try:
            decision = decide_request(
                session=session,
                user=session.get(User, staff_id),
                request_id=request_id,
                approve="all_eligible",
                reject=[],
                note="",
                issuance=issuance,
            )
        except IssuerError as exc:
            return ("error", exc.code)
        return ("ok", decision.letter.number if decision.letter else None)


def test_twenty_concurrent_issuances_produce_twenty_distinct_numbers_and_no_partial_letter(pg_sessions, tmp_path):
    issuance = Issuance(keys_dir=tmp_path, passphrase="p", public_url="http://issuer.test", sealer=PadesSealer())
    maker_code, vins, clerk_id, staff = _set_up(pg_sessions, tmp_path, CONCURRENT)
    request_ids = [_file(pg_sessions, maker_code, clerk_id, [vin]) for vin in vins]
    barrier = threading.Barrier(CONCURRENT)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        results = list(
            pool.map(lambda i: _decide(pg_sessions, issuance, staff[i % 2], request_ids[i], barrier), range(CONCURRENT))
        )

    numbers = [number for outcome, number in results if outcome == "ok"]
    assert len(numbers) == CONCURRENT, results
    assert len(set(numbers)) == CONCURRENT
    with pg_sessions() as session:
        letters = session.scalars(select(Letter)).all()
        assert len(letters) == CONCURRENT
        assert all(letter.status == "valid" and letter.pdf_sha256 and letter.issued_at for letter in letters)


def test_two_concurrent_requests_for_one_vin_cannot_both_end_in_a_valid_letter(pg_sessions, tmp_path):
    issuance = Issuance(keys_dir=tmp_path, passphrase="p", public_url="http://issuer.test", sealer=PadesSealer())
    maker_code, vins, clerk_id, staff = _set_up(pg_sessions, tmp_path, 1)
    request_ids = [_file(pg_sessions, maker_code, clerk_id, vins) for _ in range(2)]
    barrier = threading.Barrier(2)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda i: _decide(pg_sessions, issuance, staff[i], request_ids[i], barrier), range(2)))

    with pg_sessions() as session:
        valid = session.scalar(select(func.count()).select_from(Letter).where(Letter.status == "valid"))
        assert valid == 1, results
        statuses = sorted(session.scalars(select(LetterRequest.status)))
    assert statuses.count("approved") == 1, results
    loser = next(r for r in results if r[0] == "error" or r[1] is None)
    assert loser in (("error", "CONFLICT"), ("error", "VALIDATION_FAILED")), results
