"""Signing in and out of the web pages."""

from __future__ import annotations

import re

from tests import factories


def _csrf(client, path="/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_login_page_renders_a_form_with_a_csrf_token(client):
    response = client.get("/login")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'name="email"' in html
    assert 'name="password"' in html
    assert 'name="csrf_token"' in html


def test_login_signs_in_with_the_right_password_and_signs_out(client, session):
    user = factories.user(session, "aftersales", manufacturer=factories.manufacturer(session))
    answer = client.post(
        "/login", data={"email": user.email.upper(), "password": factories.PASSWORD, "csrf_token": _csrf(client)}
    )
    assert answer.status_code == 302
    home = client.get("/", follow_redirects=True)
    assert user.email in home.get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', home.get_data(as_text=True)).group(1)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_login_refuses_a_wrong_password_and_keeps_the_email_typed(client, session):
    user = factories.user(session, "exporter", exporter=factories.exporter(session))
    answer = client.post(
        "/login", data={"email": user.email, "password": "wrong-password", "csrf_token": _csrf(client)}
    )
    assert answer.status_code == 401
    html = answer.get_data(as_text=True)
    assert "Wrong e-mail or password" in html or "电子邮箱或密码不正确" in html
    assert f'value="{user.email}"' in html
    assert client.get("/").status_code == 302


def test_login_without_a_csrf_token_is_refused(client, session):
    user = factories.user(session, "exporter", exporter=factories.exporter(session))
    client.get("/login")
    answer = client.post("/login", data={"email": user.email, "password": factories.PASSWORD})
    assert answer.status_code == 400
    assert client.get("/").status_code == 302


def test_login_never_redirects_to_another_site(client, session):
    user = factories.user(session, "exporter", exporter=factories.exporter(session))
    answer = client.post(
        "/login?next=//evil.example/steal",
        data={"email": user.email, "password": factories.PASSWORD, "csrf_token": _csrf(client)},
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"


def test_session_cookie_is_http_only_and_same_site(client, session):
    client.get("/login")
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"


def test_a_password_reset_ends_the_sessions_signed_in_with_the_old_password(app, client, session):
    from issuer.services import accounts

    maker = factories.manufacturer(session)
    admin = factories.user(session, "manufacturer_admin", manufacturer=maker)
    clerk = factories.user(session, "aftersales", manufacturer=maker)
    answer = client.post(
        "/login", data={"email": clerk.email, "password": factories.PASSWORD, "csrf_token": _csrf(client)}
    )
    assert answer.status_code == 302
    assert client.get("/", follow_redirects=True).request.path != "/login"

    accounts.set_password(session=session, actor=admin, user_id=clerk.id, password="a-brand-new-password")

    assert client.get("/", follow_redirects=True).request.path == "/login"


def test_login_never_redirects_through_a_backslash_path(client, session):
    user = factories.user(session, "exporter", exporter=factories.exporter(session))
    answer = client.post(
        "/login?next=/\\evil.example/steal",
        data={"email": user.email, "password": factories.PASSWORD, "csrf_token": _csrf(client)},
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"


def test_a_form_sent_after_the_session_ended_returns_to_its_page_after_signing_in(client, session):
    answer = client.post(
        "/requests/1/decision", data={"action": "all"}, headers={"Referer": "http://localhost/requests/1?x=1"}
    )
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/login?next=/requests/1?x%3D1")
