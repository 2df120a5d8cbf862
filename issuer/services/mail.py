"""Sending one e-mail: the SMTP transport (a small port) and the building of the message.

The transport is a port, as the sealer is: :class:`SmtpTransport` talks to a real server with
the standard library's ``smtplib``; tests use the same class against a local server. Anything a
server does wrong (refusing the connection, a recipient, or the login; timing out) comes out of
:meth:`SmtpTransport.send` as an exception, which the delivery loop turns into a retry.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Protocol

from issuer.config import Settings

SMTP_TIMEOUT_SECONDS = 20.0


class Transport(Protocol):
    """Something that hands a message to a mail server, or raises."""

    def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SmtpTransport:
    host: str
    port: int
    user: str | None = None
    password: str | None = None
    security: str = "starttls"  # starttls | ssl | none
    timeout: float = SMTP_TIMEOUT_SECONDS

    def send(self, message: EmailMessage) -> None:
        """One connection per message: notifications are few, and a fresh connection never
        inherits a half-broken session from the one before."""
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.user:
                smtp.login(self.user, self.password or "")
            refused = smtp.send_message(message)
            if refused:  # some recipients refused (send_message raises when all are)
                raise smtplib.SMTPRecipientsRefused(refused)


def transport_from(settings: Settings) -> SmtpTransport | None:
    """The configured SMTP server, or None: without one, mail is kept in the outbox."""
    if not settings.smtp_host:
        return None
    return SmtpTransport(
        host=settings.smtp_host,
        port=settings.smtp_port,
        user=settings.smtp_user,
        password=settings.smtp_password,
        security=settings.smtp_security,
    )


def compose(*, recipient: str, subject: str, body: str, mail_from: str, written_at: object) -> EmailMessage:
    """A plain-text UTF-8 message. ``Auto-Submitted`` (RFC 3834) keeps auto-responders quiet;
    the Message-ID's domain is the sender's."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = Address(addr_spec=recipient)  # exactly this one address; anything else raises
    message["Subject"] = subject
    if written_at is not None:
        message["Date"] = format_datetime(written_at)  # type: ignore[arg-type]
    message["Message-ID"] = make_msgid(domain=_domain_of(mail_from))
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body, charset="utf-8")
    return message


def _domain_of(address: str) -> str:
    _name, email = parseaddr(address)
    try:
        return Address(addr_spec=email).domain or "localhost"
    except (ValueError, IndexError):
        return "localhost"
