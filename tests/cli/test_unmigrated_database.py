"""A command run against a database that was never migrated says what to do, in one line."""
from __future__ import annotations

from issuer import create_app
from issuer.config import Settings


def test_commands_on_an_unmigrated_database_exit_2_and_say_run_db_upgrade(tmp_path):
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}", keys_dir=tmp_path / "keys"))
    result = app.test_cli_runner().invoke(
        args=["exporter", "create", "--code", "X1", "--name", "某出口公司", "--uscc", "91310000MA1FL0XW94"]
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: the database is not set up")
    assert "issuer db upgrade" in result.output
    app.extensions["issuer.db"].engine.dispose()
