"""Shared by the notification tests: a real SMTP server on 127.0.0.1 (aiosmtpd), apps configured
to use it, and two tenants with users of every kind to check who is told."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from issuer import create_app
from issuer.config import Settings
from issuer.models import Exporter, Manufacturer, User
from issuer.services.accounts import set_active
from issuer.services.keys import generate_key
from tests import factories
from tests.conftest import TODAY

REGISTERED_ON = TODAY - dt.timedelta(days=30)
APPLYING_ON = TODAY + dt.timedelta(days=10)
MAIL_FROM = "Letters <letters@issuer.test>"


def free_port() -> int:
    """A port nothing listens on (bound and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RecordingHandler:
    """Accepts every message (or refuses every recipient with 550) and keeps what it got.
    ``release`` can be cleared to hold the server's answer to DATA until a test sets it."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse = False
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Event()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.arrived.set()
        await asyncio.to_thread(self.release.wait, 30)
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int

    @property
    def messages(self) -> list[EmailMessage]:
        return [message for _sender, _recipients, message in self.handler.received]

    def recipients(self) -> list[str]:
        return sorted(r for _sender, recipients, _message in self.handler.received for r in recipients)


def start_smtp_server() -> tuple[SmtpServer, Controller]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return SmtpServer(handler=handler, port=port), controller


def mail_settings(settings: Settings, *, port: int | None) -> Settings:
    """``settings`` with SMTP on 127.0.0.1:``port`` (no TLS), or without SMTP when port is None."""
    if port is None:
        return replace(settings, smtp_host=None, mail_from=MAIL_FROM)
    return replace(settings, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none", mail_from=MAIL_FROM)


def make_mail_app(settings: Settings, database: Any, *, port: int | None, inline: bool = True):  # type: ignore[no-untyped-def]
    app = create_app(mail_settings(settings, port=port), database=database)
    app.config.update(TESTING=True, ISSUER_MAIL_INLINE=inline, ISSUER_MAIL_BACKOFF=(0.0, 0.0))
    return app


@dataclass
class MailWorld:
    """Two manufacturers and two exporters, each with users, tokens by user e-mail."""

    manufacturer: Manufacturer
    other_manufacturer: Manufacturer
    exporter: Exporter
    other_exporter: Exporter
    vins: list[str]
    other_vins: list[str]
    submitter: User
    exporter_colleague: User
    exporter_inactive: User
    other_exporter_user: User
    aftersales: User
    aftersales_colleague: User
    aftersales_inactive: User
    manufacturer_admin: User
    other_aftersales: User
    other_manufacturer_admin: User
    platform_admin: User
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user.email]}"}

    def request_body(self, vins: list[str] | None = None, *, manufacturer: Manufacturer | None = None) -> dict:
        return {
            "manufacturer": (manufacturer or self.manufacturer).code,
            "application_date": APPLYING_ON.isoformat(),
            "reference": "CONTRACT-2026-042",
            "vehicles": [
                {
                    "vin": vin,
                    "brand": "Example",
                    "model": "E1",
                    "registration_date": REGISTERED_ON.isoformat(),
                    "destination": "KZ",
                }
                for vin in (vins if vins is not None else self.vins)
            ],
        }


def build_mail_world(session: Any, settings: Settings) -> MailWorld:
    maker = factories.manufacturer(session, wmis=("LGX",))
    other = factories.manufacturer(session, wmis=("LRW",))
    for m in (maker, other):
        generate_key(
            session=session, manufacturer_code=m.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
        )
    vins = factories.random_vins("LGX", 4, seed=11)
    other_vins = factories.random_vins("LRW", 2, seed=12)
    factories.register(session, maker, vins)
    factories.register(session, other, other_vins)
    factories.outlet(session, maker, code="KZ-1", country="KZ")
    factories.outlet(session, other, code="KZ-9", country="KZ")
    exporter = factories.exporter(session)
    other_exporter = factories.exporter(session)
    user = factories.user
    world = MailWorld(
        manufacturer=maker,
        other_manufacturer=other,
        exporter=exporter,
        other_exporter=other_exporter,
        vins=vins,
        other_vins=other_vins,
        submitter=user(session, "exporter", exporter=exporter),
        exporter_colleague=user(session, "exporter", exporter=exporter),
        exporter_inactive=user(session, "exporter", exporter=exporter),
        other_exporter_user=user(session, "exporter", exporter=other_exporter),
        aftersales=user(session, "aftersales", manufacturer=maker),
        aftersales_colleague=user(session, "aftersales", manufacturer=maker),
        aftersales_inactive=user(session, "aftersales", manufacturer=maker),
        manufacturer_admin=user(session, "manufacturer_admin", manufacturer=maker),
        other_aftersales=user(session, "aftersales", manufacturer=other),
        other_manufacturer_admin=user(session, "manufacturer_admin", manufacturer=other),
        platform_admin=user(session, "platform_admin"),
    )
    for inactive in (world.exporter_inactive, world.aftersales_inactive):
        set_active(session=session, actor=world.platform_admin, user_id=inactive.id, active=False)
    for person in (
        world.submitter,
        world.other_exporter_user,
        world.aftersales,
        world.manufacturer_admin,
        world.other_aftersales,
    ):
        world.tokens[person.email] = factories.token(session, person)
    return world
