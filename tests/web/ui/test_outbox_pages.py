"""The outbox page (/admin/outbox): who may read it, which tenant's mail they see, reading one
message, and sending a failed one again."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from issuer.models import AuditEntry, MessageState, OutboxMessage
from issuer.services.mail import SmtpTransport
from tests.notifications_support import MailWorld, build_mail_world, free_port, make_mail_app, start_smtp_server
from tests.web.ui.conftest import Browser


@pytest.fixture
def world(session, settings) -> MailWorld:
    return build_mail_world(session, settings)


@pytest.fixture
def mail_app(settings, bound_database):  # type: ignore[no-untyped-def]
    """The app with no SMTP server: every message is kept in the outbox."""
    return make_mail_app(settings, bound_database, port=None)


def browser_for(app, user) -> Browser:  # type: ignore[no-untyped-def]
    return Browser(app.test_client()).sign_in(user)


def file_requests(app, world: MailWorld) -> None:  # type: ignore[no-untyped-def]
    """One request to each manufacturer: mail to each one's after-sales users."""
    client = app.test_client()
    for manufacturer, vins in ((world.manufacturer, world.vins[:1]), (world.other_manufacturer, world.other_vins[:1])):
        answer = client.post(
            "/api/v1/requests",
            json=world.request_body(vins, manufacturer=manufacturer),
            headers=world.auth(world.submitter),
        )
        assert answer.status_code == 201, answer.json


def messages_to(session, email: str) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == email)))


def test_a_platform_administrator_sees_every_kept_message_newest_first(session, world, mail_app):
    file_requests(mail_app, world)
    page = browser_for(mail_app, world.platform_admin).get("/admin/outbox")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for person in (world.aftersales, world.aftersales_colleague, world.other_aftersales):
        assert person.email in html
    assert html.count('class="badge kept"') == 3
    assert "Kept (no SMTP server)" in html
    # Newest first: the second request's mail comes before the first's.
    assert html.index(world.other_aftersales.email) < html.index(world.aftersales.email)
    assert 'href="/admin/outbox"' in html  # the menu names the page


def test_a_manufacturer_administrator_sees_only_their_manufacturers_mail(session, world, mail_app):
    file_requests(mail_app, world)
    admin = browser_for(mail_app, world.manufacturer_admin)

    html = admin.get("/admin/outbox").get_data(as_text=True)
    assert world.aftersales.email in html
    assert world.aftersales_colleague.email in html
    assert world.other_aftersales.email not in html
    assert "2 message(s)" in html

    others = messages_to(session, world.other_aftersales.email)
    assert admin.get(f"/admin/outbox/{others[0].id}").status_code == 404
    mine = messages_to(session, world.aftersales.email)[0]
    assert admin.get(f"/admin/outbox/{mine.id}").status_code == 200


@pytest.mark.parametrize("role", ["aftersales", "submitter"])
def test_exporters_and_aftersales_may_not_read_the_outbox(session, world, mail_app, role):
    file_requests(mail_app, world)
    user = world.aftersales if role == "aftersales" else world.submitter
    reader = browser_for(mail_app, user)
    message = messages_to(session, world.aftersales.email)[0]

    assert reader.get("/admin/outbox").status_code == 403
    assert reader.get(f"/admin/outbox/{message.id}").status_code == 403
    assert 'href="/admin/outbox"' not in reader.get("/").get_data(as_text=True)


def test_the_outbox_needs_a_signed_in_user(mail_app):
    answer = mail_app.test_client().get("/admin/outbox")
    assert answer.status_code == 302
    assert "/login" in answer.headers["Location"]


def test_a_message_page_shows_the_mail_as_written(session, world, mail_app):
    file_requests(mail_app, world)
    message = messages_to(session, world.aftersales.email)[0]
    page = browser_for(mail_app, world.manufacturer_admin).get(f"/admin/outbox/{message.id}")

    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert message.subject in html
    assert world.aftersales.email in html
    assert "Request arrived" in html
    assert "http://issuer.test/requests/" in html
    assert "您好" in html
    assert "Hello," in html
    assert "Send again" not in html  # only a failed message can be sent again


def test_the_state_filter_lists_only_that_state(session, world, mail_app):
    file_requests(mail_app, world)
    admin = browser_for(mail_app, world.platform_admin)
    assert "No messages here." in admin.get("/admin/outbox?state=failed").get_data(as_text=True)
    kept = admin.get("/admin/outbox?state=kept").get_data(as_text=True)
    assert "3 message(s)" in kept
    everything = admin.get("/admin/outbox?state=nonsense").get_data(as_text=True)
    assert "3 message(s)" in everything


def test_a_failed_message_is_sent_again_from_its_page(session, world, settings, bound_database):
    """The mail server was down (closed port): the message failed. Once it is back, the
    administrator presses "Send again" and the message is delivered."""
    app = make_mail_app(settings, bound_database, port=free_port())
    file_requests(app, world)
    message = messages_to(session, world.aftersales.email)[0]
    assert message.state == MessageState.FAILED.value
    assert message.attempts == 3
    admin = browser_for(app, world.manufacturer_admin)

    page = admin.get(f"/admin/outbox/{message.id}").get_data(as_text=True)
    assert "Send again" in page
    assert "ConnectionRefusedError" in page
    assert 'name="csrf_token"' in page

    server, controller = start_smtp_server()
    try:
        app.extensions["issuer.mail"].transport = SmtpTransport(host="127.0.0.1", port=server.port, security="none")
        answer = admin.post(
            f"/admin/outbox/{message.id}/retry", form_page=f"/admin/outbox/{message.id}", follow_redirects=True
        )
    finally:
        controller.stop()

    assert answer.status_code == 200
    assert "was queued again" in answer.get_data(as_text=True)
    session.refresh(message)
    assert (message.state, message.attempts, message.last_error) == (MessageState.SENT.value, 1, None)
    assert server.recipients() == [world.aftersales.email]
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "mail.retried"))
    assert entry is not None
    assert entry.actor == world.manufacturer_admin.email
    assert entry.object_id == str(message.id)
    # The other failed messages were not touched by this retry.
    assert messages_to(session, world.aftersales_colleague.email)[0].state == MessageState.FAILED.value


def test_retrying_needs_the_csrf_token_and_a_failed_message_of_ones_own_tenant(
    session, world, settings, bound_database
):
    app = make_mail_app(settings, bound_database, port=free_port())
    file_requests(app, world)
    mine = messages_to(session, world.aftersales.email)[0]
    theirs = messages_to(session, world.other_aftersales.email)[0]
    admin = browser_for(app, world.manufacturer_admin)

    assert admin.client.post(f"/admin/outbox/{mine.id}/retry", data={}).status_code == 400
    assert admin.post(f"/admin/outbox/{theirs.id}/retry", form_page=f"/admin/outbox/{mine.id}").status_code == 404
    session.refresh(mine)
    session.refresh(theirs)
    assert mine.state == theirs.state == MessageState.FAILED.value

    outsider = browser_for(app, world.aftersales)
    # The 403 page carries the layout's CSRF token (language switch), so the role check is what refuses.
    assert outsider.post(f"/admin/outbox/{mine.id}/retry", form_page="/admin/outbox").status_code == 403


def test_retrying_a_message_that_did_not_fail_changes_nothing(session, world, mail_app):
    file_requests(mail_app, world)
    kept = messages_to(session, world.aftersales.email)[0]
    admin = browser_for(mail_app, world.platform_admin)

    answer = admin.post(f"/admin/outbox/{kept.id}/retry", form_page=f"/admin/outbox/{kept.id}", follow_redirects=True)

    assert answer.status_code == 200
    assert "Only a failed message can be retried" in answer.get_data(as_text=True)
    session.refresh(kept)
    assert kept.state == MessageState.KEPT.value
    assert session.scalar(select(AuditEntry).where(AuditEntry.action == "mail.retried")) is None
