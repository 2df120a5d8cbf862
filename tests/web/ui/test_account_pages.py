"""The account page: who I am, my API tokens (shown once, revocable, only mine), my language
remembered with the account, and changing my password."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from issuer.models import ApiToken, AuditEntry, User
from issuer.services import accounts
from tests import factories
from tests.web.ui.admin_support import error_beside, page
from tests.web.ui.admin_support import user as make_user

TOKEN = re.compile(r'id="new-token-value" class="token-value" value="(isr_[^"]+)"')


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def exporter_user(session) -> User:
    return make_user(session, "exporter", exporter=factories.exporter(session, "EXPA"))


@pytest.mark.parametrize("role", ["exporter", "aftersales", "manufacturer_admin", "reviewer", "platform_admin"])
def test_every_role_sees_its_account_page(make_browser, session, role):
    organisation = {}
    if role == "exporter":
        organisation = {"exporter": factories.exporter(session)}
    if role in ("aftersales", "manufacturer_admin"):
        organisation = {"manufacturer": factories.manufacturer(session, "ACME")}
    user = make_user(session, role, **organisation)
    text = page(make_browser(user).get("/account"))
    assert user.email in text
    assert {
        "exporter": "Exporter",
        "aftersales": "After-sales",
        "manufacturer_admin": "Manufacturer administrator",
        "reviewer": "Reviewer",
        "platform_admin": "Platform administrator",
    }[role] in text
    for organisation_of_user in organisation.values():
        assert organisation_of_user.code in text
    assert 'name="csrf_token"' in text
    assert "You have no API token." in text


def test_a_new_token_is_shown_once_works_on_the_api_and_revoking_it_gives_401(
    make_browser, client, session, exporter_user
):
    browser = make_browser(exporter_user)
    created = browser.post("/account/tokens", {"name": "ERP connector"}, form_page="/account")
    assert created.status_code == 200
    assert created.headers["Cache-Control"] == "no-store"
    text = page(created)
    token = TOKEN.search(text).group(1)
    assert "shown only this once" in text
    assert client.get("/api/v1/requests", headers=bearer(token)).status_code == 200

    again = page(browser.get("/account"))
    assert token not in again  # never shown again …
    assert token[:12] in again  # … only its prefix, to tell tokens apart
    assert "ERP connector" in again
    session_cookie = browser.client.get_cookie("session")
    assert token not in (session_cookie.value if session_cookie else "")

    (stored,) = accounts.list_tokens(session, exporter_user)
    revoked = browser.post(f"/account/tokens/{stored.id}/revoke", {}, form_page="/account")
    assert revoked.status_code == 302
    assert client.get("/api/v1/requests", headers=bearer(token)).status_code == 401
    listed = page(browser.get("/account"))
    assert "Revoked" in listed
    assert f'action="/account/tokens/{stored.id}/revoke"' not in listed
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "token.revoked")).one()
    assert entry.actor == exporter_user.email
    assert token not in str(entry.details)


def test_revoke_forms_ask_for_confirmation(make_browser, session, exporter_user):
    factories.token(session, exporter_user)
    text = page(make_browser(exporter_user).get("/account"))
    assert 'data-confirm="Revoke the token' in text


def test_a_user_cannot_see_or_revoke_another_users_token(make_browser, client, session, exporter_user):
    other = make_user(session, "exporter", exporter=factories.exporter(session))
    other_token = factories.token(session, other)
    (other_stored,) = accounts.list_tokens(session, other)
    browser = make_browser(exporter_user)

    assert other_token[:12] not in page(browser.get("/account"))
    answer = browser.post(f"/account/tokens/{other_stored.id}/revoke", {}, form_page="/account")
    assert answer.status_code == 404
    session.expire_all()
    assert session.get(ApiToken, other_stored.id).revoked_at is None
    assert client.get("/api/v1/requests", headers=bearer(other_token)).status_code == 200


def test_token_name_too_long_is_shown_beside_the_field(make_browser, session, exporter_user):
    browser = make_browser(exporter_user)
    answer = browser.post("/account/tokens", {"name": "x" * 101}, form_page="/account")
    assert answer.status_code == 422
    assert error_beside(page(answer), "name")
    assert accounts.list_tokens(session, exporter_user) == []


def test_the_language_chosen_on_the_account_page_is_saved_and_applied(make_browser, session, exporter_user):
    browser = make_browser(exporter_user)
    assert '<html lang="en">' in page(browser.get("/account"))

    answer = browser.post("/account/language", {"locale": "zh"}, form_page="/account")
    assert answer.status_code == 302
    session.expire_all()
    assert session.get(User, exporter_user.id).locale == "zh"
    chinese = page(browser.get("/account"))
    assert '<html lang="zh-Hans">' in chinese
    assert '<option selected value="zh">' in chinese

    # remembered with the account: a new sign-in elsewhere, asking for English, still gets Chinese
    assert '<html lang="zh-Hans">' in page(make_browser(exporter_user).get("/account"))

    browser.post("/account/language", {"locale": "en"}, form_page="/account")
    assert '<html lang="en">' in page(browser.get("/account"))
    bad = browser.post("/account/language", {"locale": "fr"}, form_page="/account")
    assert bad.status_code == 422
    assert error_beside(page(bad), "locale")


def test_the_header_switch_saves_the_same_preference(make_browser, session, exporter_user):
    browser = make_browser(exporter_user)
    browser.post("/language", {"language": "zh", "next": "/account"}, form_page="/account")
    session.expire_all()
    assert session.get(User, exporter_user.id).locale == "zh"
    assert '<option selected value="zh">' in page(browser.get("/account"))


def test_changing_my_password_needs_the_current_one(make_browser, session, exporter_user):
    browser = make_browser(exporter_user)
    wrong = browser.post(
        "/account/password",
        {"current_password": "not-my-password", "new_password": "a-new-password"},
        form_page="/account",
    )
    assert wrong.status_code == 422
    assert "the current password is wrong" in error_beside(page(wrong), "current_password")

    short = browser.post(
        "/account/password", {"current_password": factories.PASSWORD, "new_password": "short"}, form_page="/account"
    )
    assert short.status_code == 422
    assert error_beside(page(short), "new_password")

    done = browser.post(
        "/account/password",
        {"current_password": factories.PASSWORD, "new_password": "a-new-password"},
        form_page="/account",
    )
    assert done.status_code == 302
    make_browser().sign_in(exporter_user, password="a-new-password")
    with pytest.raises(AssertionError):
        make_browser(exporter_user)  # the old password no longer works
    assert session.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_changed")).one()


def test_account_page_needs_signing_in(client):
    answer = client.get("/account")
    assert answer.status_code == 302
    assert "/login" in answer.headers["Location"]


def test_the_password_form_offers_to_revoke_my_tokens_ticked_by_default(make_browser, exporter_user):
    text = page(make_browser(exporter_user).get("/account"))
    checkbox = re.search(r'<input[^>]*id="revoke_tokens"[^>]*>', text)
    assert checkbox is not None
    assert "checked" in checkbox.group(0)
    assert '<label for="revoke_tokens">Also revoke my API tokens</label>' in text


def test_changing_my_password_revokes_my_api_tokens_when_ticked(make_browser, client, session, exporter_user):
    tokens = [factories.token(session, exporter_user) for _ in range(2)]
    other = make_user(session, "exporter", exporter=exporter_user.exporter)
    others_token = factories.token(session, other)
    browser = make_browser(exporter_user)

    done = browser.post(
        "/account/password",
        {"current_password": factories.PASSWORD, "new_password": "a-new-password", "revoke_tokens": "y"},
        form_page="/account",
    )

    assert done.status_code == 302
    text = page(browser.get("/account"))
    assert "Your 2 API tokens are revoked" in text
    for token in tokens:
        assert client.get("/api/v1/requests", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/requests", headers=bearer(others_token)).status_code == 200
    revoked = session.scalars(select(AuditEntry).where(AuditEntry.action == "token.revoked")).all()
    assert len(revoked) == 2
    assert {entry.actor for entry in revoked} == {exporter_user.email}
    changed = session.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_changed")).one()
    assert changed.details["revoked_tokens"] == 2


def test_changing_my_password_keeps_my_tokens_when_unticked(make_browser, client, session, exporter_user):
    token = factories.token(session, exporter_user)
    browser = make_browser(exporter_user)

    done = browser.post(
        "/account/password",
        {"current_password": factories.PASSWORD, "new_password": "a-new-password"},
        form_page="/account",
    )

    assert done.status_code == 302
    assert "API token" not in page(browser.get("/account")).split("Your password is changed.", 1)[1].split("</div>")[0]
    assert client.get("/api/v1/requests", headers=bearer(token)).status_code == 200
    assert session.scalars(select(AuditEntry).where(AuditEntry.action == "token.revoked")).all() == []


def test_a_refused_password_change_keeps_the_tokens_and_the_unticked_box(make_browser, client, session, exporter_user):
    token = factories.token(session, exporter_user)
    browser = make_browser(exporter_user)

    wrong = browser.post(
        "/account/password",
        {"current_password": "not-my-password", "new_password": "a-new-password"},
        form_page="/account",
    )

    assert wrong.status_code == 422
    checkbox = re.search(r'<input[^>]*id="revoke_tokens"[^>]*>', page(wrong))
    assert checkbox is not None
    assert "checked" not in checkbox.group(0)  # what was chosen is kept
    assert client.get("/api/v1/requests", headers=bearer(token)).status_code == 200
