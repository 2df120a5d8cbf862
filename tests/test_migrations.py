"""The Alembic migrations build exactly the schema the models describe, on every backend, and
can be undone and redone on a fresh database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

import issuer.models  # noqa: F401 - registers every table on the metadata
from issuer.db import Base, make_engine
from issuer.migrate import alembic_config, current_revision, downgrade, upgrade

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()


def schema_differences(engine: Engine) -> list[Any]:
    """What autogenerate would put in a new migration: empty when models and database agree."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "render_as_batch": connection.dialect.name == "sqlite",
            },
        )
        return list(compare_metadata(context, Base.metadata))


def head_revision(engine: Engine) -> str:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of its own (not the test session's), removed afterwards."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield engine
        engine.dispose()
        return
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests not run")
    name = f"issuer_migrations_{uuid.uuid4().hex[:10]}"
    admin = make_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_autogenerate_finds_no_difference_when_database_is_at_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision(engine)

    assert schema_differences(engine) == []


def test_autogenerate_sees_a_difference_when_a_table_is_missing(fresh_engine: Engine) -> None:
    # The comparison above must be able to fail: an empty database lacks every table.
    differences = schema_differences(fresh_engine)

    added = {diff[1].name for diff in differences if isinstance(diff, tuple) and diff[0] == "add_table"}
    assert added == set(Base.metadata.tables)


def test_migrations_downgrade_to_base_and_upgrade_again_when_database_is_fresh(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    assert current_revision(fresh_engine) == head_revision(fresh_engine)
    assert table_names(fresh_engine) == set(Base.metadata.tables)

    downgrade(fresh_engine, "base")
    assert current_revision(fresh_engine) is None
    assert table_names(fresh_engine) == set()

    upgrade(fresh_engine)
    assert current_revision(fresh_engine) == head_revision(fresh_engine)
    assert schema_differences(fresh_engine) == []


def test_migrations_step_down_and_up_one_revision_at_a_time_when_database_is_fresh(fresh_engine: Engine) -> None:
    script = ScriptDirectory.from_config(alembic_config(fresh_engine))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]  # oldest first

    for revision in revisions:
        upgrade(fresh_engine, revision)
        assert current_revision(fresh_engine) == revision
    for revision in reversed(revisions[:-1]):
        downgrade(fresh_engine, revision)
        assert current_revision(fresh_engine) == revision
    downgrade(fresh_engine, "base")
    assert table_names(fresh_engine) == set()
