"""What the e2e tests share besides fixtures: Chromium's flags, the seeded world, the live
server's handle, signing in through the real login form, and requests and letters made through
the services for tests whose subject is another page."""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, ConsoleMessage, Page
from sqlalchemy.orm import Session

from issuer.config import Settings
from issuer.db import Database
from issuer.domain.eligibility import VehicleDeclaration
from issuer.models import Exporter, Manufacturer, User
from issuer.services.keys import generate_key
from issuer.services.letters import decide_request
from issuer.services.requests import submit_request
from tests import factories
from tests.conftest import TODAY

CHROMIUM = "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; the background-networking flags keep it from calling Google.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PASSWORD = factories.PASSWORD
REGISTERED_ON = TODAY - dt.timedelta(days=30)  # inside the 180-day window: a letter is needed
APPLYING_ON = TODAY + dt.timedelta(days=10)
TIMEOUT_MS = 15_000


# Every e2e module starts with ``pytestmark = E2E``: one xdist worker runs them all (one Chromium,
# one server per backend), since `make test` runs `pytest -n 2 --dist loadgroup`. (No marker of
# its own: a marker registered in this folder's conftest is not known yet when the whole suite
# is collected with --strict-markers; the group says "e2e" well enough, e.g. -k e2e.)
E2E_GROUP = "e2e"
E2E = [pytest.mark.xdist_group(E2E_GROUP)]


# -- the seeded world ----------------------------------------------------------------------------


@dataclass
class World:
    """What every e2e test may rely on. ``maker`` is ready to issue (seal key, registry, outlets in
    KZ); ``other_maker`` too, with its own WMI, for the split of a mixed spreadsheet."""

    maker: Manufacturer
    other_maker: Manufacturer
    exporter: Exporter
    other_exporter: Exporter
    exporter_user: User
    other_exporter_user: User
    aftersales: User
    maker_admin: User
    other_aftersales: User
    other_maker_admin: User
    platform_admin: User
    reviewer: User
    vins: list[str]  # maker's registry (WMI LGX); each test takes its own with take_vins()
    other_vins: list[str]  # other_maker's registry (WMI LRW)
    _taken: dict[str, int] = field(default_factory=dict)

    def take_vins(self, count: int, *, other: bool = False) -> list[str]:
        """Registered VINs no other test has used (letters cover a VIN once)."""
        key = "other" if other else "maker"
        pool = self.other_vins if other else self.vins
        start = self._taken.get(key, 0)
        if start + count > len(pool):
            raise AssertionError(f"the e2e world has too few registered VINs; raise its pool ({key})")
        self._taken[key] = start + count
        return pool[start : start + count]


def seed_world(session: Session, settings: Settings) -> World:
    """The world, built through the real services (as an operator would with the CLI)."""
    maker = factories.manufacturer(session, wmis=("LGX",))
    other_maker = factories.manufacturer(session, wmis=("LRW",))
    for m in (maker, other_maker):
        generate_key(
            session=session, manufacturer_code=m.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
        )
    vins = factories.random_vins("LGX", 60, seed=41)
    other_vins = factories.random_vins("LRW", 30, seed=42)
    factories.register(session, maker, vins)
    factories.register(session, other_maker, other_vins)
    factories.outlet(session, maker, code="KZ-ALMATY-1", country="KZ")
    factories.outlet(session, maker, code="KZ-ASTANA-1", country="KZ")
    factories.outlet(session, other_maker, code="KZ-OTHER-1", country="KZ")
    exporter = factories.exporter(session)
    other_exporter = factories.exporter(session)
    user = factories.user
    return World(
        maker=maker,
        other_maker=other_maker,
        exporter=exporter,
        other_exporter=other_exporter,
        exporter_user=user(session, "exporter", exporter=exporter),
        other_exporter_user=user(session, "exporter", exporter=other_exporter),
        aftersales=user(session, "aftersales", manufacturer=maker),
        maker_admin=user(session, "manufacturer_admin", manufacturer=maker),
        other_aftersales=user(session, "aftersales", manufacturer=other_maker),
        other_maker_admin=user(session, "manufacturer_admin", manufacturer=other_maker),
        platform_admin=user(session, "platform_admin"),
        reviewer=user(session, "reviewer"),
        vins=vins,
        other_vins=other_vins,
    )


# -- the live server -----------------------------------------------------------------------------


class ErrorLog(logging.Handler):
    """Collects the errors the server logs (an unexpected exception renders a 500 page)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class LiveServer:
    url: str
    app: Flask
    database: Database
    settings: Settings
    world: World
    backend: str
    errors: ErrorLog

    def session(self) -> Session:
        """A session on the server's database, to build data through the services."""
        return self.database.sessions()

    def __call__(self, path: str) -> str:
        return self.url + path


def file_request(server: LiveServer, vins: list[str], *, reference: str = "E2E-CONTRACT") -> int:
    """A request of the world's exporter to its manufacturer, filed through the service (for
    tests whose subject is another page)."""
    with server.session() as session:
        user = session.get(User, server.world.exporter_user.id)
        assert user is not None
        request, _ = submit_request(
            session=session,
            user=user,
            manufacturer_code=server.world.maker.code,
            application_date=APPLYING_ON,
            reference=reference,
            vehicles=[VehicleDeclaration(vin, "Example", "E1", REGISTERED_ON, "KZ") for vin in vins],
        )
        return request.id


def issue_letter(server: LiveServer, vins: list[str]) -> tuple[int, str]:
    """File a request and approve every eligible vehicle: (request id, letter number).

    Runs in a thread of its own: sealing calls ``asyncio.run``, which cannot run in the test's
    thread, where Playwright's event loop is running."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_issue_letter, server, vins).result()


def _issue_letter(server: LiveServer, vins: list[str]) -> tuple[int, str]:
    request_id = file_request(server, vins)
    with server.session() as session:
        user = session.get(User, server.world.aftersales.id)
        assert user is not None
        decision = decide_request(
            session=session,
            user=user,
            request_id=request_id,
            approve="all_eligible",
            reject=[],
            note="",
            issuance=server.app.extensions["issuer.issuance"],
        )
        assert decision.letter is not None
        return request_id, decision.letter.number


def sign_in(page: Page, user: User, password: str = PASSWORD) -> None:
    """Sign in through the real /login form, by its labels; then read the pages in English
    (a user's saved language is Chinese until changed: this clicks the language switch, the way
    a user would, and the choice is remembered)."""
    page.goto("/login")
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/login" not in page.url, f"{user.email} could not sign in: {page.url}"
    if page.locator("html").get_attribute("lang") != "en":
        page.get_by_role("button", name="English").click()
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == "en", "the language switch did not switch to English"


# -- the Content-Security-Policy -----------------------------------------------------------------

# Reports every violation of the page's Content-Security-Policy (a blocked script, style, image,
# fetch, frame or form target) to the test; injected by the browser before any page script runs.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.violatedDirective} blocked ${event.blockedURI || "(inline)"} on ${document.location.pathname}`
    + (event.sourceFile ? ` (${event.sourceFile}:${event.lineNumber})` : ""));
});
"""


def watch_content_security_policy(context: BrowserContext) -> list[str]:
    """The CSP violations of every page the context opens, from the page's own event and from
    the console (where Chromium also reports what it refused). Watching a context again gives
    the same list."""
    watched: list[str] | None = getattr(context, "csp_violations", None)
    if watched is not None:
        return watched
    violations: list[str] = []
    context.csp_violations = violations  # type: ignore[attr-defined]

    def report(violation: str) -> None:
        violations.append(violation)

    context.expose_function("reportCspViolation", report)
    context.add_init_script(_REPORT_CSP_VIOLATIONS)

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(f"console: {message.text}")

    context.on("console", console)
    return violations
