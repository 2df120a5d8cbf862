"""The menu marks the item a page belongs to, sub-pages included."""

from __future__ import annotations

import pytest

from issuer.web.ui import NAVIGATION
from tests import factories

ITEMS = {item.endpoint: item for item in NAVIGATION}


@pytest.mark.parametrize(
    ("endpoint", "item"),
    [
        ("registry.outlet_edit", "registry.outlets"),
        ("registry.outlets_import", "registry.outlets"),
        ("registry.import_job", "registry.vehicles"),
        ("registry.block_lift", "registry.blocks"),
        ("admin.manufacturer_edit", "admin.manufacturers"),
        ("admin.user_new", "admin.users"),
        ("admin.keys_of", "admin.keys"),
        ("admin.seal_image", "admin.keys"),
        ("requests_ui.detail", "requests_ui.index"),
        ("letters_ui.revoke", "letters_ui.index"),
        ("verify.verify_page", "verify.verify_form"),
    ],
)
def test_a_page_marks_the_menu_item_it_belongs_to_and_no_other(endpoint, item):
    assert [i.endpoint for i in NAVIGATION if i.is_current(endpoint)] == [item]


def test_no_item_is_current_on_a_page_outside_the_menu():
    assert not any(i.is_current(e) for i in NAVIGATION for e in (None, "pages.login", "account.index"))


def test_the_new_outlet_page_marks_outlets_in_the_menu(browser, session):
    maker = factories.manufacturer(session)
    browser.sign_in(factories.user(session, "aftersales", manufacturer=maker))
    html = browser.get("/registry/outlets/new").get_data(as_text=True)
    assert 'href="/registry/outlets" aria-current="page"' in html
    assert html.count('aria-current="page"') == 1
