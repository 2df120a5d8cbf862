"""End-to-end tests: the real app served over HTTP, driven by a real headless Chromium.

The server is ``issuer.create_app`` on a fresh database of each backend (a migrated SQLite file;
a new PostgreSQL database when TEST_DATABASE_URL is set), served by werkzeug in a thread on
127.0.0.1. Unlike the other tests it commits for real (the browser and the server share no
transaction), so it owns its database and the world in it is seeded once per backend through
the real services. Each test builds the objects it changes itself, so tests do not depend on
each other's order.

Chromium is Debian's (``/usr/bin/chromium``, installed by scripts/install-system-packages.sh);
Playwright's own browser download is never used. Screenshots of every main page go to
``tests/e2e/artifacts/<test>-<step>.png`` (git-ignored), to look at when a test fails.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from werkzeug.serving import BaseWSGIServer, make_server

from issuer import clock, create_app
from issuer.config import Settings
from issuer.db import Database, make_engine
from issuer.migrate import upgrade
from tests.conftest import BACKENDS, TEST_DATABASE_URL, TODAY, _create_postgres_database, _drop_postgres_database
from tests.e2e.support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    E2E_GROUP,
    TIMEOUT_MS,
    ErrorLog,
    LiveServer,
    World,
    seed_world,
    watch_content_security_policy,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Remember each phase's outcome on the test, so fixtures can tell whether it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session", params=BACKENDS)
def e2e_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of the e2e server alone: it commits for real, so it must not
    be the one the other tests of this worker roll back in."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('e2e-db') / 'issuer.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests not run")
    name, url = _create_postgres_database()
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        _drop_postgres_database(name)


@pytest.fixture(scope="session")
def live_server_session(e2e_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # The port is known only once the socket is bound, and the app needs its public URL (printed
    # in letters and their QR codes) when it is created: the server starts on a placeholder that
    # forwards to the app created right after.
    holder: dict[str, Any] = {}

    def forward(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return holder["app"](environ, start_response)

    server: BaseWSGIServer = make_server("127.0.0.1", 0, forward, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = Settings(
        database_url=e2e_database_url,
        secret_key="e2e-secret-" + uuid.uuid4().hex,
        keys_dir=tmp_path_factory.mktemp("e2e-keys"),
        key_passphrase="e2e-passphrase",
        public_url=url,
        ratelimit_enabled=False,
    )
    database = Database(e2e_database_url)
    app = create_app(settings, database=database)
    holder["app"] = app
    with clock.frozen(TODAY), database.sessions() as session:
        world = seed_world(session, settings)
    errors = ErrorLog()
    logging.getLogger("issuer").addHandler(errors)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(
            url=url,
            app=app,
            database=database,
            settings=settings,
            world=world,
            backend="postgresql" if e2e_database_url.startswith("postgres") else "sqlite",
            errors=errors,
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        mail = app.extensions.get("issuer.mail")  # its delivery thread uses the database: end it first
        if mail is not None:
            mail.stop()
        logging.getLogger("issuer").removeHandler(errors)
        database.engine.dispose()


@pytest.fixture
def live_server(live_server_session: LiveServer) -> Iterator[LiveServer]:
    """The server of this test's backend; the test fails if the server logged an error."""
    live_server_session.errors.records.clear()
    yield live_server_session
    logged = [r.getMessage() + ("\n" + r.exc_text if r.exc_text else "") for r in live_server_session.errors.records]
    assert not logged, "the server logged errors:\n" + "\n".join(logged)


@pytest.fixture
def world(live_server: LiveServer) -> World:
    return live_server.world


# -- the browser ---------------------------------------------------------------------------------


class _SharedChromium:
    """One Chromium for a run of consecutive e2e tests, stopped as soon as the next test is not one.

    Playwright's sync API keeps an asyncio event loop running in the test thread for as long as it
    is started; meanwhile ``asyncio.run`` (which sealing a letter calls) cannot run in that thread.
    The other tests of this xdist worker seal letters, so Playwright must not outlive the e2e tests.
    """

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def browser(self) -> Browser:
        if self._browser is None:
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
        return self._browser

    def stop(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None


_shared = _SharedChromium()


def is_e2e(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("xdist_group")
    return marker is not None and E2E_GROUP in (*marker.args, *marker.kwargs.values())


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Called for the tests of this folder only: after the last of a run of e2e tests (its
    contexts already closed), stop Chromium and Playwright's event loop."""
    if nextitem is None or not is_e2e(nextitem):
        _shared.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _shared.stop()


@pytest.fixture
def chromium() -> Browser:
    """The shared Chromium; each test gets fresh contexts (cookies, storage) of it."""
    return _shared.browser()


@pytest.fixture
def new_context(
    request: pytest.FixtureRequest, chromium: Browser, live_server: LiveServer
) -> Iterator[Callable[..., BrowserContext]]:
    """Opens a new browser context (a separate visitor: own cookies) in English by default. When
    the test fails, every page still open is saved as artifacts/<test>-failed-<n>.png. A page
    that violates the Content-Security-Policy fails the test (whatever the test was about)."""
    contexts: list[BrowserContext] = []
    violations: list[list[str]] = []  # one list per context

    def _open(**options: Any) -> BrowserContext:
        options.setdefault("locale", "en-US")
        options.setdefault("extra_http_headers", {"Accept-Language": "en"})
        options.setdefault("base_url", live_server.url)
        options.setdefault("accept_downloads", True)
        context = chromium.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        violations.append(watch_content_security_policy(context))
        contexts.append(context)
        return context

    yield _open
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = artifact_name(request.node.name)
        pages = [page for context in contexts for page in context.pages]
        for n, page in enumerate(pages, start=1):
            with contextlib.suppress(PlaywrightError):  # a crashed page: the failure is reported anyway
                page.screenshot(path=str(ARTIFACTS / f"{name}-failed-{n}.png"), full_page=True)
    for context in contexts:
        context.close()
    refused = [violation for found in violations for violation in found]
    assert not refused, "the Content-Security-Policy refused:\n" + "\n".join(refused)


@pytest.fixture
def page(new_context: Callable[..., BrowserContext]) -> Page:
    return new_context().new_page()


def artifact_name(test_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-")


@pytest.fixture
def shoot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """``shoot(page, "verdicts")`` saves tests/e2e/artifacts/<test>-<n>-<step>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    name = artifact_name(request.node.name)
    counter = iter(range(1, 1000))

    def _shoot(page: Page, step: str) -> Path:
        path = ARTIFACTS / f"{name}-{next(counter):02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _shoot
