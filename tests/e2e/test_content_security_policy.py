"""The pages work under the strict Content-Security-Policy, in a real Chromium.

Every page of every role's menu, and the pages reached from them (a request, a letter with its
inline QR code, the coverage chart, the account page, a registry import that polls its status,
the verification pages and an upload's result), is opened as that role; each answer carries the
policy, the stylesheet and the scripts are applied (a style of app.css is computed, app.js folds
the menu on a phone), and the browser reports no violation — neither the page's
``securitypolicyviolation`` event nor a console message. (Every other e2e test is watched the
same way by the ``new_context`` fixture.) A first check proves the watch catches a violation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page

from issuer.models import Letter, User
from issuer.web.security import CONTENT_SECURITY_POLICY
from tests.e2e.support import (
    E2E,
    TIMEOUT_MS,
    LiveServer,
    World,
    issue_letter,
    sign_in,
    watch_content_security_policy,
)

pytestmark = E2E

PHONE = {"width": 375, "height": 740}


def open_checked(page: Page, path: str, opened: list[str]) -> None:
    """Open ``path``; its answer must carry the policy, with the stylesheet applied."""
    response = page.goto(path)
    assert response is not None, path
    assert response.status < 400, f"{path}: {response.status}"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
    position = page.evaluate("() => getComputedStyle(document.querySelector('.skip-link')).position")
    assert position == "absolute", f"{path}: the stylesheet was not applied"
    opened.append(path)


def menu_paths(page: Page) -> list[str]:
    links = page.locator("nav[aria-label='Main'] a")
    paths = [links.nth(i).get_attribute("href") or "" for i in range(links.count())]
    assert paths, "the menu is empty"
    return paths


def test_the_watch_catches_a_violation(chromium: Browser, live_server: LiveServer) -> None:
    context = chromium.new_context(base_url=live_server.url)
    try:
        violations = watch_content_security_policy(context)
        page = context.new_page()
        page.goto("/login")
        page.evaluate(
            """() => {
              const script = document.createElement("script");
              script.textContent = "window.injected = true";
              document.body.append(script);
              document.body.setAttribute("style", "color: red");
            }"""
        )
        page.wait_for_timeout(300)  # the violation events are reported asynchronously
        assert page.evaluate("() => window.injected === undefined"), "an inline script ran"
        assert any(v.startswith("script-src") for v in violations), violations
        assert any(v.startswith("style-src") for v in violations), violations
    finally:
        context.close()


def test_every_main_page_works_under_the_policy(
    live_server: LiveServer, world: World, new_context: Callable[..., BrowserContext], tmp_path: Path
) -> None:
    request_id, number = issue_letter(live_server, world.take_vins(1))
    with live_server.session() as session:
        letter = session.query(Letter).filter_by(number=number).one()
        code, pdf = letter.verification_code, letter.pdf
    assert pdf is not None
    letter_file = tmp_path / f"{number}.pdf"
    letter_file.write_bytes(pdf)
    opened: list[str] = []
    watched: list[list[str]] = []

    def signed_in(user: User, **options: object) -> Page:
        context = new_context(**options)
        watched.append(watch_content_security_policy(context))
        page = context.new_page()
        sign_in(page, user)
        return page

    for user in (world.exporter_user, world.aftersales, world.maker_admin, world.platform_admin, world.reviewer):
        page = signed_in(user)
        for path in dict.fromkeys([*menu_paths(page), "/account"]):
            open_checked(page, path, opened)

    exporter = signed_in(world.exporter_user)
    open_checked(exporter, f"/requests/{request_id}", opened)
    open_checked(exporter, f"/letters/{number}", opened)
    assert exporter.locator("a.qr svg").count() == 1, "the inline QR code is not shown"
    aftersales = signed_in(world.aftersales)
    open_checked(aftersales, f"/requests/{request_id}", opened)
    open_checked(aftersales, "/registry/coverage", opened)

    # A registry import: its page polls the job's status with fetch() (connect-src 'self').
    admin = signed_in(world.other_maker_admin)
    open_checked(admin, "/registry/vehicles", opened)
    registry_file = tmp_path / "registry.csv"
    registry_file.write_text(f"vin,brand,model,production_date\n{world.other_vins[-1]},Example,E1,2025-05-01\n")
    admin.get_by_label("Registry file (CSV or XLSX)").set_input_files(str(registry_file))
    admin.get_by_role("button", name="Start the import").click()
    admin.get_by_role("heading", name="The registry was imported").wait_for(timeout=TIMEOUT_MS)
    opened.append(admin.url)

    visitor_context = new_context()
    watched.append(watch_content_security_policy(visitor_context))
    visitor = visitor_context.new_page()
    for path in ("/login", "/verify", f"/verify/{number}?code={code}"):
        open_checked(visitor, path, opened)
    visitor.goto("/verify")
    visitor.get_by_label("Letter PDF").set_input_files(str(letter_file))
    visitor.get_by_role("button", name="Upload and verify").click()
    visitor.get_by_role("heading", name="PDF verification result").wait_for()
    opened.append("POST /verify")

    # app.js runs: on a phone it folds the menu the page sends open.
    phone = signed_in(world.exporter_user, viewport=PHONE)
    phone.goto(menu_paths(phone)[0])
    assert phone.locator("details.menu").evaluate("menu => menu.open") is False, "app.js did not run"

    refused = [violation for found in watched for violation in found]
    assert not refused, "the Content-Security-Policy refused:\n" + "\n".join(refused)
    assert len(set(opened)) >= 20, opened
