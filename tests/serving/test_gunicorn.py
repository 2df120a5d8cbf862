"""The production server: real gunicorn with issuer's configuration, on SQLite and PostgreSQL.

One gunicorn (2 workers) per backend serves a database of its own. Proved against it:
liveness and readiness answer; every answer carries a request id (the caller's when sane, else
a new one) that the JSON access line of that request carries too; and SIGTERM is a graceful
shutdown — a request in flight (held at a table lock the test owns, so "in flight" is certain,
not a race) is answered in full after the signal, and the server then exits 0.
The readiness refusals (database behind the code's schema, keys directory missing) are proved
through the test client on the same backends.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from issuer import create_app
from issuer.config import Settings
from issuer.db import make_engine
from issuer.migrate import downgrade, upgrade
from tests import factories
from tests.conftest import TODAY, scratch_database

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "gunicorn.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": url,
            "SECRET_KEY": "serving-test-" + uuid.uuid4().hex,
            "ISSUER_KEYS_DIR": str(tmp_path / "keys"),
            "ISSUER_KEY_PASSPHRASE": "serving-test-passphrase",
            "ISSUER_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": "2",
            "ISSUER_LOG_FORMAT": "json",
            "RATELIMIT_ENABLED": "false",
            "REDIS_URL": "",
        }
        (tmp_path / "keys").mkdir(mode=0o700)

    def start(self) -> None:
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:issuer.gunicorn_conf", "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise AssertionError("gunicorn did not start:\n" + self.log_path.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.log.close()

    def log_lines(self) -> list[dict]:  # type: ignore[type-arg]
        lines = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    for url in scratch_database(request.param, tmp_path):
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        app = create_app(Settings(database_url=url, keys_dir=tmp_path / "unused-keys", ratelimit_enabled=False))
        with app.extensions["issuer.db"].session() as session:
            maker = factories.manufacturer(session, wmis=("LGX",))
            factories.register(session, maker, factories.random_vins("LGX", 3, seed=3))
            exporter = factories.exporter(session)
            token = factories.token(session, factories.user(session, "exporter", exporter=exporter))
            session.commit()
            maker_code = maker.code
        app.extensions["issuer.db"].engine.dispose()
        running = Server(url, tmp_path)
        running.maker_code = maker_code  # type: ignore[attr-defined]
        running.start()
        try:
            yield running, token
        finally:
            running.stop()


def test_liveness_readiness_and_request_ids_in_the_json_logs(server: tuple[Server, str]) -> None:
    running, _ = server
    ready = requests.get(running.base + "/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "keys": "ok"}}

    given = requests.get(running.base + "/healthz", headers={"X-Request-ID": "trace-42.a"}, timeout=10)
    assert given.json() == {"status": "ok"}
    assert given.headers["X-Request-ID"] == "trace-42.a"
    made = requests.get(running.base + "/healthz", headers={"X-Request-ID": "no spaces\tor tabs"}, timeout=10)
    new_id = made.headers["X-Request-ID"]
    assert len(new_id) == 32
    assert new_id != "no spaces\tor tabs"

    time.sleep(0.3)  # the workers' lines reach the file
    access = [line for line in running.log_lines() if line.get("logger") == "issuer.access"]
    by_id = {line["request_id"]: line for line in access}
    assert by_id["trace-42.a"]["path"] == "/healthz"
    assert by_id["trace-42.a"]["status"] == 200
    assert by_id["trace-42.a"]["method"] == "GET"
    assert isinstance(by_id["trace-42.a"]["duration_ms"], float)
    assert by_id[new_id]["path"] == "/healthz"
    assert all(line["level"] in ("INFO", "WARNING", "ERROR", "DEBUG") and "time" in line for line in access)


@contextmanager
def _held_write_lock(url: str) -> Iterator[None]:
    """Hold the requests table, so a filing waits inside its worker for as long as we like."""
    if url.startswith("sqlite:///"):
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("LOCK TABLE letter_requests IN ACCESS EXCLUSIVE MODE"))
            yield
            connection.rollback()
    finally:
        engine.dispose()


def test_sigterm_lets_the_request_in_flight_finish_then_exits_cleanly(server: tuple[Server, str]) -> None:
    """On PostgreSQL the filing is held at a table lock for as long as the test likes. SQLite in
    WAL mode answers a writer that finds the lock taken with an immediate 503, not a wait, so
    there the request in flight is a precheck of 10,000 vehicles (about a second of work) and
    the test checks it had no answer yet when the signal went."""
    running, token = server
    sqlite = running.url.startswith("sqlite")
    vehicles = [
        {
            "vin": vin,
            "brand": "Example",
            "model": "E1",
            "registration_date": (TODAY - dt.timedelta(days=30)).isoformat(),
            "destination": "KZ",
        }
        for vin in factories.random_vins("LGX", 10_000 if sqlite else 1, seed=3)
    ]
    body = {
        "manufacturer": running.maker_code,  # type: ignore[attr-defined]
        "application_date": (TODAY + dt.timedelta(days=3)).isoformat(),
        "reference": "in flight at shutdown",
        "vehicles": vehicles,
    }
    path, expected = ("/api/v1/precheck", 200) if sqlite else ("/api/v1/requests", 201)
    answers: list[requests.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(
            requests.post(running.base + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        )
    )
    with nullcontext() if sqlite else _held_write_lock(running.url):
        sender.start()
        time.sleep(0.2 if sqlite else 1.0)
        assert not answers  # in flight
        running.process.send_signal(signal.SIGTERM)
        if not sqlite:
            time.sleep(1.0)
            assert running.process.poll() is None  # still finishing the request in flight
            with pytest.raises(requests.RequestException):  # but no longer taking new connections
                requests.get(running.base + "/healthz", timeout=2)
    sender.join(timeout=60)
    assert answers, "the request in flight got no answer"
    assert answers[0].status_code == expected, answers[0].text[:500]
    assert running.process.wait(timeout=40) == 0
    shutdown = running.log_path.read_text()
    assert "Handling signal: term" in shutdown
    assert "Shutting down: Master" in shutdown


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_readiness_fails_when_the_schema_is_behind_or_the_keys_are_missing(backend: str, tmp_path: Path) -> None:
    for url in scratch_database(backend, tmp_path):
        engine = make_engine(url)
        upgrade(engine)
        keys = tmp_path / "keys"
        keys.mkdir()
        app = create_app(Settings(database_url=url, keys_dir=keys, ratelimit_enabled=False))
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        keys.rmdir()
        missing = client.get("/readyz")
        assert missing.status_code == 503
        assert missing.get_json() == {"status": "not ready", "checks": {"database": "ok", "keys": "failed"}}
        keys.mkdir()
        downgrade(engine, "-1")
        behind = client.get("/readyz")
        assert behind.status_code == 503
        assert behind.get_json()["checks"]["database"] == "failed"
        assert client.get("/healthz").status_code == 200  # alive all the same
        app.extensions["issuer.db"].engine.dispose()
        engine.dispose()
