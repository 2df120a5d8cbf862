"""The audit log page: administrators read the trail of their own tenant (a platform
administrator all of it, and has the chain verified); everybody else is refused."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from issuer.models import AuditEntry
from issuer.services import accounts, audit
from tests import factories
from tests.services.test_audit import _bypass_triggers


@pytest.fixture
def tenants(session):  # type: ignore[no-untyped-def]
    acme = factories.manufacturer(session, "ACME", wmis=("LGX",))
    other = factories.manufacturer(session, "OTHER", wmis=("LRW",))
    factories.outlet(session, acme, code="ACME-OUTLET", country="KZ")
    factories.outlet(session, other, code="OTHER-OUTLET", country="TH")
    return acme, other


def _admin(session, role: str, **organisation):  # type: ignore[no-untyped-def]
    """A user who reads pages in English (the assertions name English text)."""
    user = factories.user(session, role, **organisation)
    return accounts.set_locale(session=session, user=user, locale="en")


def _seqs(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', html)]


def test_a_manufacturer_admin_sees_only_their_own_tenants_entries(make_browser, session, tenants):
    acme, _ = tenants
    admin = _admin(session, "manufacturer_admin", manufacturer=acme)

    page = make_browser(admin).get("/audit")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "ACME-OUTLET" in html
    assert "OTHER-OUTLET" not in html
    assert "OTHER" not in html.replace("OTHER-OUTLET", "")
    assert "<td>Signed in</td>" in html  # their own sign-in, from the test client's address
    assert "127.0.0.1" in html
    assert "Verify the chain" not in html
    assert "Intact" not in make_browser(admin).post("/audit", {"verify": "1"}).get_data(as_text=True)


def test_a_platform_admin_sees_every_tenant_newest_first(make_browser, session, tenants):
    platform = _admin(session, "platform_admin")

    html = make_browser(platform).get("/audit").get_data(as_text=True)

    assert "ACME-OUTLET" in html
    assert "OTHER-OUTLET" in html
    seqs = _seqs(html)
    assert seqs == sorted(seqs, reverse=True)
    assert len(seqs) >= 5


@pytest.mark.parametrize("role", ["exporter", "aftersales", "reviewer"])
def test_other_roles_are_refused_with_403(make_browser, session, tenants, role):
    acme, _ = tenants
    organisation = {"exporter": factories.exporter(session)} if role == "exporter" else {}
    if role == "aftersales":
        organisation = {"manufacturer": acme}
    user = _admin(session, role, **organisation)

    page = make_browser(user).get("/audit")

    assert page.status_code == 403
    assert "ACME-OUTLET" not in page.get_data(as_text=True)


def test_an_anonymous_visitor_is_sent_to_sign_in(browser):
    page = browser.get("/audit")

    assert page.status_code == 302
    assert "/login" in page.headers["Location"]


def test_the_filters_select_one_action_or_one_object(make_browser, session, tenants):
    acme, _ = tenants
    admin = _admin(session, "manufacturer_admin", manufacturer=acme)
    b = make_browser(admin)

    by_action = b.get("/audit?action=outlet.created").get_data(as_text=True)
    by_object = b.get("/audit?object_type=manufacturer&object_id=ACME").get_data(as_text=True)

    assert "ACME-OUTLET" in by_action
    assert "<td>Signed in</td>" not in by_action
    assert '<option selected value="outlet.created">' in by_action
    assert "<td>Manufacturer created</td>" in by_object
    assert "<td>Outlet added</td>" not in by_object
    assert "<td>Outlet added</td>" in by_action
    assert 'value="ACME"' in by_object  # what was typed is kept


def test_bad_filters_are_shown_beside_the_field_with_status_422(make_browser, session, tenants):
    platform = _admin(session, "platform_admin")
    b = make_browser(platform)

    bad_action = b.get("/audit?action=letter.eaten&object_id=KEEP-ME")
    bad_page = b.get("/audit?page=zero")

    assert bad_action.status_code == 422
    html = bad_action.get_data(as_text=True)
    assert 'id="action-error"' in html
    assert 'value="KEEP-ME"' in html
    assert bad_page.status_code == 422
    assert "The page number must be a whole number" in bad_page.get_data(as_text=True)


def test_the_log_is_paginated_50_entries_a_page(make_browser, session, tenants):
    acme, _ = tenants
    for _ in range(60):
        audit.record(session, action="key.used", object_type="key", object_id="K-PAGED", manufacturer_id=acme.id)
    session.commit()
    admin = _admin(session, "manufacturer_admin", manufacturer=acme)
    b = make_browser(admin)

    first = b.get("/audit?object_id=K-PAGED").get_data(as_text=True)
    second = b.get("/audit?object_id=K-PAGED&page=2").get_data(as_text=True)

    assert len(_seqs(first)) == 50
    assert len(_seqs(second)) == 10
    assert min(_seqs(first)) > max(_seqs(second))
    assert "Page 1 of 2" in first
    assert "page=2" in first
    assert "object_id=K-PAGED" in first.split("Page 1 of 2")[1]  # the next link keeps the filter


def test_a_platform_admin_has_the_chain_verified_and_sees_each_problem(make_browser, session, tenants):
    platform = _admin(session, "platform_admin")
    b = make_browser(platform)

    page = b.get("/audit")
    assert "Verify the chain" in page.get_data(as_text=True)
    assert "Intact:" not in b.get("/audit?verify=1").get_data(as_text=True)  # a link checks nothing
    intact = b.post("/audit", {"verify": "1"}).get_data(as_text=True)
    assert "Intact:" in intact

    edited = audit.verify_chain(session).head_seq
    _bypass_triggers(session)
    session.execute(
        update(AuditEntry)
        .where(AuditEntry.seq == edited)
        .values(origin="10.9.9.9")
        .execution_options(synchronize_session=False)
    )
    session.commit()
    broken = b.post("/audit", {"verify": "1"}).get_data(as_text=True)

    assert "The chain is broken" in broken
    assert f"entry {edited} (user.signed_in) was altered" in broken
