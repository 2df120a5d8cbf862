"""Notifications: who is told what when a request arrives, is decided, or a letter is revoked;
delivery to a real SMTP server on 127.0.0.1; a broken server never breaks the action."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from issuer.config import ConfigurationError, Settings
from issuer.db import Database, make_engine
from issuer.migrate import upgrade
from issuer.models import AuditEntry, Letter, LetterRequest, MessageState, OutboxMessage
from issuer.services import audit
from issuer.services.mail import SmtpTransport
from issuer.services.notifications import deliver_pending
from tests.conftest import _create_postgres_database, _drop_postgres_database
from tests.notifications_support import (
    MAIL_FROM,
    MailWorld,
    build_mail_world,
    free_port,
    make_mail_app,
    start_smtp_server,
)


@pytest.fixture
def world(session, settings) -> MailWorld:
    return build_mail_world(session, settings)


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    server, controller = start_smtp_server()
    yield server
    controller.stop()


@pytest.fixture
def make_client(settings, bound_database):  # type: ignore[no-untyped-def]
    """A test client of an app whose SMTP server listens on ``port`` (None: no SMTP configured)."""

    def _make(port: int | None):  # type: ignore[no-untyped-def]
        return make_mail_app(settings, bound_database, port=port).test_client()

    return _make


def outbox(session, kind: str | None = None) -> list[OutboxMessage]:
    session.expire_all()
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if kind:
        query = query.where(OutboxMessage.kind == kind)
    return list(session.scalars(query))


def submit(client, world: MailWorld, vins: list[str] | None = None) -> int:
    answer = client.post("/api/v1/requests", json=world.request_body(vins), headers=world.auth(world.submitter))
    assert answer.status_code == 201, answer.json
    return int(answer.json["id"])


def approve(client, world: MailWorld, request_id: int, **body: object) -> str:
    answer = client.post(
        f"/api/v1/requests/{request_id}/decision",
        json={"approve": "all_eligible", **body},
        headers=world.auth(world.aftersales),
    )
    assert answer.status_code == 200, answer.json
    return str(answer.json["letter_number"])


# -- who is told, and what ---------------------------------------------------------------------


def test_a_new_request_is_told_to_the_manufacturers_active_aftersales_users_only(session, world, make_client):
    client = make_client(None)
    request_id = submit(client, world)

    messages = outbox(session)
    assert sorted(m.recipient for m in messages) == sorted([world.aftersales.email, world.aftersales_colleague.email])
    for message in messages:
        assert message.kind == "request.submitted"
        assert message.manufacturer_id == world.manufacturer.id
        assert message.exporter_id == world.exporter.id
        assert f"#{request_id}" in message.subject
        assert world.exporter.name in message.subject
        assert "4" in message.subject
        assert f"http://issuer.test/requests/{request_id}" in message.body
        assert world.manufacturer.name in message.body
        assert world.manufacturer.name_en in message.body
        assert "车辆：4 辆，其中按规则可出具 4 辆" in message.body
        assert "Vehicles: 4, of which 4 eligible under the rules" in message.body
        assert "哈萨克斯坦（KZ）" in message.body
        assert "Kazakhstan (KZ)" in message.body
        assert "CONTRACT-2026-042" in message.body
        # Chinese first, English below it, in one plain-text message.
        assert message.body.index("您好") < message.body.index("Hello,")
        assert "<" not in message.body
        assert message.state == MessageState.KEPT.value  # no SMTP server configured


def test_a_request_to_the_other_manufacturer_tells_only_its_aftersales(session, world, make_client):
    client = make_client(None)
    body = world.request_body(world.other_vins, manufacturer=world.other_manufacturer)
    answer = client.post("/api/v1/requests", json=body, headers=world.auth(world.submitter))
    assert answer.status_code == 201, answer.json

    assert [m.recipient for m in outbox(session)] == [world.other_aftersales.email]
    assert outbox(session)[0].manufacturer_id == world.other_manufacturer.id


def test_a_rejection_is_told_to_the_exporters_active_users_with_the_reasons(session, world, make_client):
    client = make_client(None)
    request_id = submit(client, world, world.vins[:2])
    answer = client.post(
        f"/api/v1/requests/{request_id}/decision",
        json={
            "reject": [{"vin": v, "reason": "registration papers unreadable"} for v in world.vins[:2]],
            "note": "请补充",
        },
        headers=world.auth(world.aftersales),
    )
    assert answer.status_code == 200, answer.json

    decided = outbox(session, "request.decided")
    assert sorted(m.recipient for m in decided) == sorted([world.submitter.email, world.exporter_colleague.email])
    message = decided[0]
    assert message.subject == f"确认书申请 #{request_id} 未获批准 / Letter request #{request_id} was rejected"
    assert message.exporter_id == world.exporter.id
    assert message.manufacturer_id == world.manufacturer.id
    assert f"{world.vins[0]}：registration papers unreadable" in message.body
    assert f"{world.vins[1]}: registration papers unreadable" in message.body
    assert "批准：0 辆；拒绝：2 辆" in message.body
    assert "Approved: 0; rejected: 2" in message.body
    assert "审核意见：请补充" in message.body
    assert f"http://issuer.test/requests/{request_id}" in message.body
    assert "/letters/" not in message.body


def test_an_approval_is_told_once_its_letter_is_sealed_naming_the_letter(session, world, make_client):
    client = make_client(None)
    request_id = submit(client, world, world.vins[:3])
    number = approve(client, world, request_id, reject=[{"vin": world.vins[2], "reason": "sold elsewhere"}])

    decided = outbox(session, "request.decided")
    assert sorted(m.recipient for m in decided) == sorted([world.submitter.email, world.exporter_colleague.email])
    message = decided[0]
    assert number in message.subject
    assert f"#{request_id}" in message.subject
    assert f"http://issuer.test/letters/{number}" in message.body
    assert f"http://issuer.test/requests/{request_id}" in message.body
    assert "批准：2 辆；拒绝：1 辆" in message.body
    assert "Approved: 2; rejected: 1" in message.body
    letter = session.scalar(select(Letter).where(Letter.number == number))
    assert letter is not None
    assert letter.status == "valid"
    assert f"Valid until: {letter.valid_until.isoformat()}" in message.body
    # Nobody of the manufacturer or another exporter is told of the decision.
    assert all(m.kind == "request.submitted" for m in outbox(session) if m.exporter_id != world.exporter.id)


def test_a_revocation_is_told_to_the_exporters_active_users_with_the_reason(session, world, make_client):
    client = make_client(None)
    number = approve(client, world, submit(client, world, world.vins[:1]))
    answer = client.post(
        f"/api/v1/letters/{number}/revoke",
        json={"reason": "出口合同已取消 / contract cancelled"},
        headers=world.auth(world.manufacturer_admin),
    )
    assert answer.status_code == 200, answer.json

    revoked = outbox(session, "letter.revoked")
    assert sorted(m.recipient for m in revoked) == sorted([world.submitter.email, world.exporter_colleague.email])
    message = revoked[0]
    assert message.subject == f"确认书 {number} 已被撤销 / Letter {number} was revoked"
    assert "撤销原因：出口合同已取消 / contract cancelled" in message.body
    assert "Reason: 出口合同已取消 / contract cancelled" in message.body
    assert "车辆：1 辆" in message.body
    assert "Vehicles: 1" in message.body
    assert f"http://issuer.test/letters/{number}" in message.body
    assert message.manufacturer_id == world.manufacturer.id
    assert message.exporter_id == world.exporter.id
    everyone = {m.recipient for m in outbox(session)}
    for outsider in (world.other_exporter_user, world.other_aftersales, world.exporter_inactive):
        assert outsider.email not in everyone


def test_a_refused_action_writes_no_message(session, world, make_client):
    client = make_client(None)
    request_id = submit(client, world, world.vins[:1])
    before = len(outbox(session))
    answer = client.post(
        f"/api/v1/requests/{request_id}/decision",
        json={"approve": ["LGXNOTINREQUEST1"]},
        headers=world.auth(world.aftersales),
    )
    assert answer.status_code == 422
    assert len(outbox(session)) == before


def test_a_rolled_back_change_leaves_no_message(session, world, make_client):
    """The message is written in the change's transaction: when the change is rolled back after
    its audit entry was recorded, the message goes with it."""
    client = make_client(None)
    request_id = submit(client, world, world.vins[:1])
    before = len(outbox(session))
    with client.application.app_context():
        audit.record(
            session,
            action="request.submitted",
            object_type="request",
            object_id=request_id,
            manufacturer_id=world.manufacturer.id,
            exporter_id=world.exporter.id,
        )
        session.flush()
        assert len(list(session.scalars(select(OutboxMessage)))) == before + 2  # written, not committed
        session.rollback()
    assert len(outbox(session)) == before
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.object_id == str(request_id)))


# -- delivery ----------------------------------------------------------------------------------


def test_messages_are_delivered_to_a_real_smtp_server_and_marked_sent(session, world, make_client, smtp):
    client = make_client(smtp.port)
    request_id = submit(client, world, world.vins[:2])

    assert smtp.recipients() == sorted([world.aftersales.email, world.aftersales_colleague.email])
    messages = outbox(session)
    assert {m.state for m in messages} == {MessageState.SENT.value}
    assert all(m.attempts == 1 and m.sent_at is not None and m.last_error is None for m in messages)
    received = smtp.messages[0]
    stored = next(m for m in messages if m.recipient == received["To"])
    assert received["From"] == MAIL_FROM
    assert received["Subject"] == stored.subject
    assert received["Subject"].startswith(f"新的确认书申请 #{request_id}")
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["Message-ID"].endswith("@issuer.test>")
    assert received["Date"]
    assert received.get_content_type() == "text/plain"
    assert received.get_content_charset() == "utf-8"
    assert received.get_content() == stored.body
    assert f"http://issuer.test/requests/{request_id}" in received.get_content()


def test_a_refusing_server_fails_the_message_after_retries_and_the_revocation_still_succeeds(
    session, world, make_client, smtp
):
    client = make_client(smtp.port)
    number = approve(client, world, submit(client, world, world.vins[:1]))
    smtp.handler.refuse = True

    answer = client.post(
        f"/api/v1/letters/{number}/revoke", json={"reason": "wrong VIN"}, headers=world.auth(world.aftersales)
    )

    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "revoked"
    session.expire_all()
    assert session.scalar(select(Letter.status).where(Letter.number == number)) == "revoked"
    revoked = outbox(session, "letter.revoked")
    assert len(revoked) == 2
    for message in revoked:
        assert message.state == MessageState.FAILED.value
        assert message.attempts == 3
        assert "550" in (message.last_error or "")
        assert message.sent_at is None
    # The mail of before (sent while the server accepted) is untouched.
    assert {m.state for m in outbox(session) if m.kind != "letter.revoked"} == {MessageState.SENT.value}


def test_a_closed_port_fails_the_message_and_the_request_is_still_filed(session, world, make_client):
    client = make_client(free_port())
    request_id = submit(client, world, world.vins[:1])

    session.expire_all()
    assert session.get(LetterRequest, request_id) is not None
    messages = outbox(session)
    assert len(messages) == 2
    for message in messages:
        assert message.state == MessageState.FAILED.value
        assert message.attempts == 3
        assert "ConnectionRefusedError" in (message.last_error or "")


def test_a_server_that_refuses_once_gets_the_message_on_the_retry(session, world, smtp):
    """deliver_pending retries after the pause: the server refuses the first round only."""
    message = OutboxMessage(kind="request.submitted", recipient="someone@example.test", subject="s", body="b")
    session.add(message)
    session.commit()
    smtp.handler.refuse = True
    pauses: list[float] = []

    def pause(seconds: float) -> bool:
        pauses.append(seconds)
        smtp.handler.refuse = False  # the server recovers while we wait
        return True

    report = deliver_pending(
        session,
        SmtpTransport(host="127.0.0.1", port=smtp.port, security="none"),
        mail_from=MAIL_FROM,
        backoff=(7.0, 30.0),
        pause=pause,
    )

    assert (report.sent, report.retrying, report.failed) == (1, 1, 0)
    assert pauses == [7.0]
    session.refresh(message)
    assert (message.state, message.attempts, message.last_error) == ("sent", 2, None)
    assert smtp.recipients() == ["someone@example.test"]


def test_without_smtp_messages_are_kept(session, world, make_client):
    client = make_client(None)
    submit(client, world, world.vins[:1])
    assert {(m.state, m.attempts) for m in outbox(session)} == {(MessageState.KEPT.value, 0)}


def test_without_smtp_messages_are_kept_in_the_change_itself_with_no_delivery_after_it(
    session, world, settings, bound_database
):
    app = make_mail_app(settings, bound_database, port=None, inline=False)  # no inline delivery to rely on
    client = app.test_client()
    submit(client, world, world.vins[:1])
    assert {(m.state, m.attempts) for m in outbox(session)} == {(MessageState.KEPT.value, 0)}
    assert app.extensions["issuer.mail"]._thread is None  # nothing was woken to write afterwards


# -- the command line --------------------------------------------------------------------------


def test_mail_deliver_sends_failed_and_kept_messages_again_when_asked(session, world, settings, bound_database, smtp):
    closed = make_mail_app(settings, bound_database, port=free_port())
    submit(closed.test_client(), world, world.vins[:1])
    assert {m.state for m in outbox(session)} == {MessageState.FAILED.value}

    working = make_mail_app(settings, bound_database, port=smtp.port)
    plain = working.test_cli_runner().invoke(args=["mail", "deliver"])
    assert plain.exit_code == 0, plain.output
    assert "0 sent" in plain.output
    assert {m.state for m in outbox(session)} == {MessageState.FAILED.value}

    again = working.test_cli_runner().invoke(args=["mail", "deliver", "--failed"])
    assert again.exit_code == 0, again.output
    assert "2 message(s) queued again" in again.output
    assert "2 sent" in again.output
    assert {(m.state, m.attempts) for m in outbox(session)} == {(MessageState.SENT.value, 1)}
    assert len(smtp.messages) == 2
    retried = session.scalars(select(AuditEntry).where(AuditEntry.action == "mail.retried")).all()
    assert len(retried) == 2
    assert all(e.origin == "cli" for e in retried)


def test_mail_deliver_without_smtp_says_the_messages_are_kept(session, world, settings, bound_database):
    app = make_mail_app(settings, bound_database, port=None)
    submit(app.test_client(), world, world.vins[:1])
    result = app.test_cli_runner().invoke(args=["mail", "deliver", "--kept"])
    assert result.exit_code == 0, result.output
    assert "no SMTP server configured" in result.output
    assert "2 message(s) kept" in result.output


# -- the background thread, against a real database file ---------------------------------------


def test_the_background_thread_delivers_after_the_response_without_making_it_wait(settings, tmp_path: Path, smtp):
    """Served as in production: a database file, mail in the dispatcher's thread. The SMTP
    server holds its answer until the response has come back, so the request cannot have
    waited on it; then the message is marked sent by the thread's own session."""
    url = f"sqlite:///{tmp_path / 'mail.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    database = Database(url)
    app = make_mail_app(replace(settings, database_url=url), database, port=smtp.port, inline=False)
    dispatcher = app.extensions["issuer.mail"]
    try:
        with database.session() as session:
            world = build_mail_world(session, settings)
        smtp.handler.release.clear()
        answer = app.test_client().post(
            "/api/v1/requests", json=world.request_body(world.vins[:1]), headers=world.auth(world.submitter)
        )
        assert answer.status_code == 201, answer.json
        assert smtp.handler.arrived.wait(10), "the thread did not start delivering"
        with database.session() as session:
            assert {m.state for m in session.scalars(select(OutboxMessage))} == {MessageState.QUEUED.value}
        smtp.handler.release.set()

        deadline = time.monotonic() + 20
        states: set[str] = set()
        while time.monotonic() < deadline:
            with database.session() as session:
                states = {m.state for m in session.scalars(select(OutboxMessage))}
            if states == {MessageState.SENT.value}:
                break
            time.sleep(0.05)
        assert states == {MessageState.SENT.value}
        assert smtp.recipients() == sorted([world.aftersales.email, world.aftersales_colleague.email])
    finally:
        smtp.handler.release.set()
        dispatcher.stop()
        database.engine.dispose()


# -- sweeps: mail that no commit woke the dispatcher for ------------------------------------------


@pytest.fixture
def served_database(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An empty migrated database of the test's backend with real commits, which the dispatcher's
    thread may use (the shared test connection may not be used by a thread); dropped after."""
    postgres_name = None
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'served.db'}"
    else:
        postgres_name, url = _create_postgres_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    database = Database(url)
    try:
        yield database
    finally:
        database.engine.dispose()
        if postgres_name is not None:
            _drop_postgres_database(postgres_name)


def queue_directly(database: Database, count: int, *, first: int = 1) -> None:
    """Messages written to the queue with no commit hook to wake anyone, as a restart leaves them."""
    with database.session() as session:
        session.add_all(
            OutboxMessage(kind="request.submitted", recipient=f"r{n}@example.test", subject=f"s{n}", body="b")
            for n in range(first, first + count)
        )
        session.commit()


def wait_for(condition, seconds: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def states_of(database: Database) -> dict[str, tuple[str, int]]:
    with database.session() as session:
        return {m.recipient: (m.state, m.attempts) for m in session.scalars(select(OutboxMessage))}


def refusal_of(database: Database, recipient: str) -> str | None:
    """The server's answer to the last failed attempt (written once the attempt is over)."""
    with database.session() as session:
        return session.scalar(select(OutboxMessage.last_error).where(OutboxMessage.recipient == recipient))


def test_deliver_pending_reads_batch_after_batch_until_the_queue_is_empty(session, smtp):
    session.add_all(
        OutboxMessage(kind="request.submitted", recipient=f"r{n}@example.test", subject="s", body="b") for n in range(5)
    )
    session.commit()

    report = deliver_pending(
        session, SmtpTransport(host="127.0.0.1", port=smtp.port, security="none"), mail_from=MAIL_FROM, limit=2
    )

    assert report.sent == 5
    assert {m.state for m in outbox(session)} == {MessageState.SENT.value}
    assert smtp.recipients() == sorted(f"r{n}@example.test" for n in range(5))


def test_the_thread_sweeps_mail_queued_before_it_started_and_then_on_its_timer(
    settings, served_database: Database, smtp
):
    """A restart leaves 5 messages queued (more than a batch of 2): the first request the new
    process serves starts the thread, which sends them all; a message queued later without a
    wake-up goes out with the next periodic sweep."""
    queue_directly(served_database, 5)
    app = make_mail_app(
        replace(settings, database_url=str(served_database.engine.url)), served_database, port=smtp.port, inline=False
    )
    app.config.update(ISSUER_MAIL_BATCH=2, ISSUER_MAIL_SWEEP_SECONDS=0.2)
    dispatcher = app.extensions["issuer.mail"]
    try:
        assert not dispatcher.running
        assert app.test_client().get("/login").status_code == 200
        assert wait_for(lambda: {s for s, _ in states_of(served_database).values()} == {MessageState.SENT.value})
        assert smtp.recipients() == sorted(f"r{n}@example.test" for n in range(1, 6))

        queue_directly(served_database, 1, first=6)
        assert wait_for(lambda: states_of(served_database)["r6@example.test"] == (MessageState.SENT.value, 1))
        assert len(smtp.messages) == 6
    finally:
        dispatcher.stop()


def test_a_testing_app_starts_no_thread_and_no_timer(settings, served_database: Database, smtp):
    queue_directly(served_database, 1)
    app = make_mail_app(
        replace(settings, database_url=str(served_database.engine.url)), served_database, port=smtp.port
    )
    assert app.test_client().get("/login").status_code == 200
    assert not app.extensions["issuer.mail"].running
    assert states_of(served_database) == {"r1@example.test": (MessageState.QUEUED.value, 0)}


def test_new_mail_goes_out_at_once_while_an_older_message_waits_out_its_retry_pause(
    settings, served_database: Database, smtp
):
    queue_directly(served_database, 1)
    app = make_mail_app(
        replace(settings, database_url=str(served_database.engine.url)), served_database, port=smtp.port, inline=False
    )
    app.config.update(ISSUER_MAIL_BACKOFF=(60.0, 60.0))
    dispatcher = app.extensions["issuer.mail"]
    try:
        with served_database.session() as session:
            world = build_mail_world(session, settings)
        smtp.handler.refuse = True
        client = app.test_client()
        assert client.get("/login").status_code == 200  # starts the thread: r1 is refused, 60 s pause
        assert wait_for(lambda: refusal_of(served_database, "r1@example.test") is not None)
        smtp.handler.refuse = False

        submit(client, world, world.vins[:1])

        colleagues = sorted([world.aftersales.email, world.aftersales_colleague.email])
        sent = (MessageState.SENT.value, 1)
        assert wait_for(lambda: all(states_of(served_database).get(e) == sent for e in colleagues), seconds=10), (
            "the new mail waited for the pause"
        )
        assert smtp.recipients() == colleagues
        states = states_of(served_database)
        assert states["r1@example.test"] == (MessageState.QUEUED.value, 1)  # its retry keeps its pause
    finally:
        dispatcher.stop()


# -- configuration -----------------------------------------------------------------------------


def test_smtp_settings_are_read_from_the_environment():
    settings = Settings.from_environment(
        {
            "ISSUER_SMTP_HOST": "mail.example.test",
            "ISSUER_SMTP_PORT": "465",
            "ISSUER_SMTP_USER": "letters",
            "ISSUER_SMTP_PASSWORD": "secret",
            "ISSUER_SMTP_SECURITY": "SSL",
            "ISSUER_MAIL_FROM": "Letters <letters@example.test>",
        }
    )
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_security) == ("mail.example.test", 465, "ssl")
    assert (settings.smtp_user, settings.smtp_password) == ("letters", "secret")
    assert settings.mail_from == "Letters <letters@example.test>"
    defaults = Settings.from_environment({})
    assert (defaults.smtp_host, defaults.smtp_port, defaults.smtp_security) == (None, 587, "starttls")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ISSUER_SMTP_PORT", "smtp"), ("ISSUER_SMTP_PORT", "70000"), ("ISSUER_SMTP_SECURITY", "tls1.3")],
)
def test_bad_smtp_settings_are_refused(variable: str, value: str):
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_environment({variable: value})
