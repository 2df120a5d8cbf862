"""Shared fixtures. Every database test runs on SQLite and, when TEST_DATABASE_URL names a
PostgreSQL server, on PostgreSQL too (a fresh database per test session, dropped afterwards).

Each test runs inside one transaction on one connection; the code under test commits to a
SAVEPOINT, and the test's end rolls everything back.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from issuer import clock, create_app
from issuer.config import Settings
from issuer.db import make_engine
from issuer.migrate import upgrade

# The date the clock is frozen at unless a test asks for another (China time).
TODAY = dt.date(2026, 9, 15)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite", "postgresql"]


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("ISSUER_REQUIRE_POSTGRES") == "1" and not TEST_DATABASE_URL:
        raise pytest.UsageError("ISSUER_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ISSUER_FAIL_ON_SKIP=1 (CI), a skipped test fails the run: a missing service must not
    pass silently."""
    if os.environ.get("ISSUER_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus == 0:
        session.exitstatus = 1
        if reporter:
            reporter.write_line(f"ISSUER_FAIL_ON_SKIP: {skipped} test(s) skipped; failing the run", red=True)


@pytest.fixture(autouse=True)
def frozen_clock(request: pytest.FixtureRequest) -> Iterator[dt.date]:
    """Freeze China's today at TODAY, so date rules are deterministic."""
    if request.node.get_closest_marker("real_clock"):
        yield clock.today_in_china()
        return
    with clock.frozen(TODAY):
        yield TODAY


def _create_postgres_database() -> tuple[str, str]:
    admin = make_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    name = f"issuer_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base = make_engine(TEST_DATABASE_URL).url
    return name, base.set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(name: str) -> None:
    admin = make_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def scratch_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database of its own for a test whose other processes (a worker, a
    server) must see committed data: a SQLite file, or a fresh PostgreSQL database dropped after.
    Used as ``for url in scratch_database(kind, tmp_path): ...`` inside a fixture."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'issuer.db'}"
        return
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests not run")
    name, url = _create_postgres_database()
    try:
        yield url
    finally:
        _drop_postgres_database(name)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of each backend, for the whole session."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "issuer.db"
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests not run")
    name, url = _create_postgres_database()
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        _drop_postgres_database(name)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    connection = engine.connect()
    transaction = connection.begin()
    try:
        yield connection
    finally:
        transaction.rollback()
        connection.close()


class _BoundDatabase:
    """Stands in for ``issuer.db.Database``: every session joins the test's transaction."""

    def __init__(self, connection: Connection) -> None:
        self.engine = connection.engine
        self.sessions = sessionmaker(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")

    def session(self) -> Session:
        return self.sessions()


@pytest.fixture
def bound_database(connection: Connection) -> _BoundDatabase:
    return _BoundDatabase(connection)


@pytest.fixture
def session(bound_database: _BoundDatabase) -> Iterator[Session]:
    session = bound_database.sessions()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-" + uuid.uuid4().hex,
        keys_dir=tmp_path / "keys",
        key_passphrase="test-passphrase",
        public_url="http://issuer.test",
        ratelimit_enabled=False,
    )


@pytest.fixture
def app(settings: Settings, bound_database: _BoundDatabase):  # type: ignore[no-untyped-def]
    app = create_app(settings, database=bound_database)  # type: ignore[arg-type]
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def cli(app):  # type: ignore[no-untyped-def]
    """Runs ``issuer`` commands against the test's database (Click's runner, same process)."""
    return app.test_cli_runner()
