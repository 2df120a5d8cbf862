"""``issuer audit verify`` and ``issuer audit show``: the chain's check from the command line, and
what commands record (the operating-system user and host, origin ``cli``)."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Iterator

import pytest
from click.testing import Result
from flask.testing import FlaskCliRunner
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from issuer.models import AuditEntry
from issuer.services import audit
from tests import factories
from tests.services.test_audit import _bypass_triggers


def run(cli: FlaskCliRunner, *args: object) -> Result:
    return cli.invoke(args=[str(a) for a in args])


@pytest.fixture(autouse=True)
def no_request_context() -> Iterator[None]:
    """As in a real ``issuer`` process, no web request has set an audit context."""
    token = audit.set_context(None)
    yield
    audit.reset_context(token)


def _create_exporter(cli: FlaskCliRunner, code: str) -> None:
    uscc = factories.uscc(900_000 + sum(map(ord, code)))
    result = run(cli, "exporter", "create", "--code", code, "--name", f"{code} 出口有限公司", "--uscc", uscc)
    assert result.exit_code == 0, result.output


def test_commands_record_the_operating_system_user_and_host_with_origin_cli(cli, session: Session) -> None:
    _create_exporter(cli, "AUDITED")

    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "exporter.created", AuditEntry.object_id == "AUDITED")
    ).one()
    assert entry.actor == f"cli:{getpass.getuser()}@{socket.gethostname()}"
    assert entry.origin == "cli"


def test_verify_exits_0_and_prints_the_count_and_intact_when_the_chain_is_intact(cli, session: Session) -> None:
    _create_exporter(cli, "EXA")
    _create_exporter(cli, "EXB")
    expected = audit.verify_chain(session)

    result = run(cli, "audit", "verify")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{expected.entries_checked} entries checked: intact"
    assert lines[1] == f"head: {expected.head_seq}:{expected.head_hash}"


def test_verify_exits_1_naming_the_entry_when_an_entry_was_edited(cli, session: Session) -> None:
    _create_exporter(cli, "EXA")
    _create_exporter(cli, "EXB")
    edited = audit.verify_chain(session).head_seq - 1
    _bypass_triggers(session)
    session.execute(
        update(AuditEntry)
        .where(AuditEntry.seq == edited)
        .values(actor="someone-else")
        .execution_options(synchronize_session=False)
    )
    session.commit()

    result = run(cli, "audit", "verify")

    assert result.exit_code == 1, result.output
    assert "BROKEN" in result.stdout.splitlines()[0]
    assert f"problem: entry {edited} (exporter.created) was altered: its hash does not match" in result.stdout


def test_verify_exits_1_naming_the_entry_when_an_entry_was_deleted(cli, session: Session) -> None:
    for code in ("EXA", "EXB", "EXC"):
        _create_exporter(cli, code)
    deleted = audit.verify_chain(session).head_seq - 1
    _bypass_triggers(session)
    session.execute(delete(AuditEntry).where(AuditEntry.seq == deleted).execution_options(synchronize_session=False))
    session.commit()

    result = run(cli, "audit", "verify")

    assert result.exit_code == 1, result.output
    assert f"problem: entry {deleted} missing (deleted)" in result.stdout


def test_verify_checks_an_anchor_and_refuses_a_malformed_one(cli, session: Session) -> None:
    _create_exporter(cli, "EXA")
    head = audit.verify_chain(session)

    assert run(cli, "audit", "verify", "--anchor", f"{head.head_seq}:{head.head_hash}").exit_code == 0
    wrong = run(cli, "audit", "verify", "--anchor", f"{head.head_seq}:{'f' * 64}")
    assert wrong.exit_code == 1
    assert "is not the one anchored" in wrong.stdout
    bad = run(cli, "audit", "verify", "--anchor", "seven")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: --anchor 'seven' must be SEQ:HASH")


def test_show_prints_one_objects_entries_oldest_first(cli, session: Session) -> None:
    _create_exporter(cli, "EXA")
    _create_exporter(cli, "EXB")
    result = run(cli, "token", "create", "--email", factories.user(session, "reviewer").email)
    assert result.exit_code == 0

    shown = run(cli, "audit", "show", "--object", "exporter:EXB")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert len(lines) == 1
    assert "exporter.created" in lines[0]
    assert "exporter:EXB" in lines[0]
    assert "from cli" in lines[0]
    newest = run(cli, "audit", "show", "--limit", 2).stdout.splitlines()
    assert [line.split()[3] for line in newest] == ["user.created", "token.created"]
    assert run(cli, "audit", "show", "--object", "exporter").exit_code == 2
