"""Alembic environment: runs against the engine the caller hands over (``issuer db upgrade``,
the tests), or DATABASE_URL when run as plain ``alembic``."""

from __future__ import annotations

from alembic import context

import issuer.models  # noqa: F401 - registers every table on the metadata
from issuer.config import Settings
from issuer.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or make_engine(Settings.from_environment().database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
