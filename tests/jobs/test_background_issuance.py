"""Background issuance through RQ on a real Redis, on SQLite and PostgreSQL.

A worker sees only committed data, so each test has a database of its own (a SQLite file, or a
fresh PostgreSQL database) and a queue of its own on Redis (``redis://127.0.0.1:6379/13``, a
queue name per test). The web side is the real app through its test client; the worker side is
RQ's ``SimpleWorker`` in this process (burst mode: it works off the queue, then returns) or, in
one test, the real ``issuer worker --burst`` command in a subprocess.

What is proved: a big approval answers 202 with a status URL whose state goes queued → done and
then names the letter, which is valid and verifies; a small one is still sealed inline (200);
the status is the tenant's alone; a permanent failure fails the job at once and frees the VINs;
an unexpected error is retried and, with no retries left, reported as failed, the letter kept
reserved so the page can finish it; a job the queue lost is found again from the database and
completed; a job whose worker died is retried by RQ's own abandoned-job handling and completes.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rq import SimpleWorker
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from issuer import create_app, worker
from issuer.config import Settings
from issuer.db import make_engine
from issuer.migrate import upgrade
from issuer.models import CoveredVin, IssuanceJob, Letter, LetterRequest, RegisteredVehicle, User
from issuer.queue import IssuanceQueue
from issuer.services import issuance_jobs
from issuer.services.keys import generate_key
from issuer.services.letters import verify_pdf
from tests import factories
from tests.conftest import TODAY, scratch_database
from tests.web.ui.conftest import Browser

REDIS_URL = "redis://127.0.0.1:6379/13"
PASSPHRASE = "queue-test-passphrase"


@dataclass
class World:
    app: object
    url: str
    keys_dir: Path
    queue: IssuanceQueue
    maker_code: str
    vins: list[str]
    exporter_token: str
    staff_token: str
    other_token: str
    staff_id: int

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    for url in scratch_database(request.param, tmp_path):
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        keys_dir = tmp_path / "keys"
        settings = Settings(
            database_url=url,
            secret_key="queue-test-" + uuid.uuid4().hex,
            keys_dir=keys_dir,
            key_passphrase=PASSPHRASE,
            public_url="http://issuer.test",
            ratelimit_enabled=False,
            redis_url=REDIS_URL,
            inline_issuance_max_vehicles=2,
        )
        app = create_app(settings)
        queue = IssuanceQueue(REDIS_URL, name=f"test-issuance-{uuid.uuid4().hex[:8]}", retry_delays=(0, 0))
        app.extensions["issuer.queue"] = queue
        database = app.extensions["issuer.db"]
        with database.session() as session:
            maker = factories.manufacturer(session, wmis=("LGX",))
            generate_key(session=session, manufacturer_code=maker.code, keys_dir=keys_dir, passphrase=PASSPHRASE)
            vins = factories.random_vins("LGX", 12, seed=5)
            factories.register(session, maker, vins)
            factories.outlet(session, maker, country="KZ")
            exporter = factories.exporter(session)
            other_exporter = factories.exporter(session)
            clerk = factories.user(session, "exporter", exporter=exporter)
            staff = factories.user(session, "aftersales", manufacturer=maker)
            other = factories.user(session, "exporter", exporter=other_exporter)
            tokens = (factories.token(session, clerk), factories.token(session, staff), factories.token(session, other))
            session.commit()
            maker_code, staff_id = maker.code, staff.id
        worker.use_app(app)  # type: ignore[arg-type]
        try:
            yield World(app, url, keys_dir, queue, maker_code, vins, *tokens, staff_id)
        finally:
            worker.use_app(None)  # type: ignore[arg-type]
            queue.queue.empty()
            for registry in (queue.queue.failed_job_registry, queue.queue.finished_job_registry):
                for job_id in registry.get_job_ids():
                    registry.remove(job_id, delete_job=True)
            database.engine.dispose()


def _file(world: World, vins: list[str]) -> int:
    client = world.app.test_client()  # type: ignore[attr-defined]
    body = {
        "manufacturer": world.maker_code,
        "application_date": (TODAY + dt.timedelta(days=5)).isoformat(),
        "reference": "queue test",
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
    answer = client.post("/api/v1/requests", json=body, headers=world.headers(world.exporter_token))
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"]


def _approve(world: World, request_id: int):  # type: ignore[no-untyped-def]
    client = world.app.test_client()  # type: ignore[attr-defined]
    return client.post(
        f"/api/v1/requests/{request_id}/decision",
        json={"approve": "all_eligible"},
        headers=world.headers(world.staff_token),
    )


def _work(world: World) -> None:
    """Work off the queue in this process, as a worker would, scheduled retries included."""
    rq_worker = SimpleWorker([world.queue.queue], connection=world.queue.redis)
    for _ in range(6):  # retries are scheduled (delay 0 here): let the scheduler move them back
        rq_worker.work(burst=True, with_scheduler=True)
        if not world.queue.queue.scheduled_job_registry.count and not world.queue.queue.count:
            break


def _job(world: World, status_url: str, token: str | None = None) -> dict:  # type: ignore[type-arg]
    client = world.app.test_client()  # type: ignore[attr-defined]
    answer = client.get(status_url, headers=world.headers(token or world.staff_token))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()  # type: ignore[no-any-return]


def _rows(world: World, model: type) -> int:
    with world.app.extensions["issuer.db"].session() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_big_approval_answers_202_and_a_worker_issues_a_letter_that_verifies(world: World) -> None:
    request_id = _file(world, world.vins[:5])
    answer = _approve(world, request_id)
    assert answer.status_code == 202, answer.get_json()
    body = answer.get_json()
    assert body["letter_number"] is None
    assert body["status"] == "approved"
    assert answer.headers["Location"] == body["status_url"] == f"/api/v1/jobs/{body['job']['id']}"
    queued = _job(world, body["status_url"])
    assert queued["state"] == "queued"
    assert queued["queue_position"] == 0
    assert queued["letter_number"] is None
    assert queued["vehicles"] == 5
    # Not yet a letter anyone can see.
    client = world.app.test_client()  # type: ignore[attr-defined]
    assert client.get("/api/v1/letters", headers=world.headers(world.exporter_token)).get_json()["letters"] == []

    _work(world)

    done = _job(world, body["status_url"], token=world.exporter_token)
    assert done["state"] == "done"
    assert done["attempts"] == 1
    assert done["error"] is None
    number = done["letter_number"]
    assert done["letter_url"] == f"/api/v1/letters/{number}"
    letter = client.get(f"/api/v1/letters/{number}", headers=world.headers(world.exporter_token)).get_json()
    assert letter["status"] == "valid"
    assert len(letter["vehicles"]) == 5
    pdf = client.get(f"/api/v1/letters/{number}/pdf", headers=world.headers(world.exporter_token)).data
    with world.app.extensions["issuer.db"].session() as session:  # type: ignore[attr-defined]
        assert verify_pdf(session=session, pdf=pdf).authentic


def test_a_small_approval_is_still_sealed_inline(world: World) -> None:
    answer = _approve(world, _file(world, world.vins[:2]))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["letter_number"]
    assert answer.get_json()["job"] is None
    assert world.queue.queue.count == 0
    assert _rows(world, IssuanceJob) == 0


def test_another_exporter_cannot_see_the_job_and_nobody_without_a_token(world: World) -> None:
    status_url = _approve(world, _file(world, world.vins[:3])).get_json()["status_url"]
    client = world.app.test_client()  # type: ignore[attr-defined]
    assert client.get(status_url, headers=world.headers(world.other_token)).status_code == 404
    assert client.get(status_url).status_code == 401
    assert client.get("/api/v1/jobs/" + "0" * 32, headers=world.headers(world.staff_token)).status_code == 404


def test_a_letter_that_cannot_be_printed_fails_its_job_at_once_and_frees_the_vins(world: World) -> None:
    request_id = _file(world, world.vins[:3])
    with world.app.extensions["issuer.db"].session() as session:  # type: ignore[attr-defined]
        # A model no installed font can print (a code point of a private-use plane), as filed and
        # as registered: the rules accept it, rendering refuses it.
        request = session.get(LetterRequest, request_id)
        for vehicle in request.vehicles:
            vehicle.model = "E1 \U000f0000"
        session.execute(
            update(RegisteredVehicle).where(RegisteredVehicle.vin.in_(world.vins[:3])).values(model="E1 \U000f0000")
        )
        session.commit()
    status_url = _approve(world, request_id).get_json()["status_url"]
    _work(world)
    job = _job(world, status_url)
    assert job["state"] == "failed"
    assert job["attempts"] == 1
    assert "cannot be printed" in job["error"]
    assert _rows(world, Letter) == 0
    assert _rows(world, CoveredVin) == 0
    with world.app.extensions["issuer.db"].session() as session:  # type: ignore[attr-defined]
        assert session.get(LetterRequest, request_id).status == "submitted"


def test_an_unexpected_error_is_retried_then_reported_and_the_letter_stays_reserved(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = []

    def database_gone(**kwargs):  # type: ignore[no-untyped-def]
        attempts.append(kwargs["letter_id"])
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(issuance_jobs, "complete_letter", database_gone)
    request_id = _file(world, world.vins[:3])
    status_url = _approve(world, request_id).get_json()["status_url"]
    _work(world)
    job = _job(world, status_url)
    assert len(attempts) == 3  # the first and two retries (retry_delays of this queue: 2)
    assert job["state"] == "failed"
    assert job["attempts"] == 3
    assert "server closed the connection" in job["error"]
    with world.app.extensions["issuer.db"].session() as session:  # type: ignore[attr-defined]
        letter = session.scalar(select(Letter))
        assert letter is not None
        assert letter.status == "pending"
    monkeypatch.undo()

    # Finishing from the page queues a new job, which completes.
    again = _approve(world, request_id)
    assert again.status_code == 202, again.get_json()
    _work(world)
    assert _job(world, again.get_json()["status_url"])["state"] == "done"


def test_a_job_the_queue_lost_is_found_from_the_database_and_completed(world: World) -> None:
    status_url = _approve(world, _file(world, world.vins[:4])).get_json()["status_url"]
    world.queue.queue.empty()  # Redis lost it (a restart without persistence)
    job_id = status_url.rsplit("/", 1)[1]
    assert not world.queue.is_alive(job_id)
    with world.app.extensions["issuer.db"].session() as session:  # type: ignore[attr-defined]
        session.get(IssuanceJob, job_id).created_at -= worker.LOST_JOB_GRACE * 2
        session.commit()

    assert worker.requeue_lost(world.app, world.queue) == 1  # type: ignore[arg-type]
    assert worker.requeue_lost(world.app, world.queue) == 0  # queued now: not queued twice
    _work(world)
    assert _job(world, status_url)["state"] == "done"


def test_a_job_whose_worker_died_is_retried_by_the_queue_and_completes(world: World) -> None:
    """The real ``issuer worker`` runs the job in a subprocess and is killed (SIGKILL, with its
    work horse) while the job runs; RQ's cleanup of abandoned jobs — run here with a clock past
    the heartbeat's expiry rather than waiting the 70 s — retries it and another worker seals it."""
    status_url = _approve(world, _file(world, world.vins[:6])).get_json()["status_url"]
    job_id = status_url.rsplit("/", 1)[1]
    env = {
        **os.environ,
        "DATABASE_URL": world.url,
        "REDIS_URL": REDIS_URL,
        "ISSUER_KEYS_DIR": str(world.keys_dir),
        "ISSUER_KEY_PASSPHRASE": PASSPHRASE,
        "ISSUER_QUEUE_NAME": world.queue.queue.name,
    }
    log_path = world.keys_dir.parent / "worker.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from issuer.cli import main; main()", "worker", "--burst"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    try:
        for _ in range(600):
            with world.app.extensions["issuer.db"].session() as session:  # type: ignore[attr-defined]
                if session.get(IssuanceJob, job_id).state == "running":
                    break
            process.poll()
            assert process.returncode is None, log_path.read_text()
            time.sleep(0.05)
        os.killpg(process.pid, 9)
    finally:
        process.wait(timeout=30)
        log_file.close()
    assert _job(world, status_url)["state"] == "running"  # what the row says while nobody works it

    registry = world.queue.queue.started_job_registry
    registry.cleanup(timestamp=dt.datetime.now(dt.UTC).timestamp() + 3600)
    _work(world)
    job = _job(world, status_url)
    assert job["state"] == "done", job
    assert job["attempts"] == 2, job
    with world.app.extensions["issuer.db"].session() as session:  # type: ignore[attr-defined]
        letters = session.scalars(select(Letter)).all()
        assert [letter.status for letter in letters] == ["valid"]


def test_the_worker_command_refuses_to_start_without_redis(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "REDIS_URL": ""}
    done = subprocess.run(
        [sys.executable, "-c", "from issuer.cli import main; main()", "worker", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: issuer worker needs REDIS_URL: without a job queue letters are sealed inline"


def test_the_request_page_shows_the_job_until_the_letter_is_ready(world: World) -> None:
    request_id = _file(world, world.vins[:4])
    with world.app.extensions["issuer.db"].session() as session:  # type: ignore[attr-defined]
        staff = session.get(User, world.staff_id)
    browser = Browser(world.app.test_client()).sign_in(staff)  # type: ignore[attr-defined]
    page_path = f"/requests/{request_id}"
    answer = browser.post(f"{page_path}/decision", {"action": "all_eligible"}, form_page=page_path)
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(page_path)

    waiting = browser.get(page_path).get_data(as_text=True)
    assert "is being issued: Waiting for a worker" in waiting
    assert '<meta http-equiv="refresh" content="3">' in waiting
    assert "Finish issuing" not in waiting  # nothing to finish while a worker has it

    _work(world)
    ready = browser.get(page_path).get_data(as_text=True)
    with world.app.extensions["issuer.db"].session() as session:  # type: ignore[attr-defined]
        number = session.scalar(select(Letter.number))
    assert "Letter issued:" in ready
    assert number in ready
    assert 'http-equiv="refresh"' not in ready
