"""Markup and script in every free-text field show as text: in the pages, their JSON twins, the
sealed PDF and the e-mail — never as a live tag, attribute, link or template.

The fields tried: everything a user or an import can write that is shown again.

- Request (API): reference; each vehicle's brand, model, VIN (a malformed VIN is stored,
  refused and shown) and destination (an unknown code is stored and shown, upper-cased).
  Decision (API): note, rejection reason; the decision form refused with 422 keeps both in its
  textareas. Letter: revocation reason (page form; also typed into the form refused with 422,
  which shows it again in its textarea).
- Outlet (service, page form refused with 422, CSV import refused line by line): name,
  provider, address, city, phone, e-mail, brands.
- Production registry (CSV uploaded through the page): brand, model, the file's name, and an
  invalid row's VIN as its error list quotes it.
- Manufacturer: MIIT-listed name, English name (also the seal certificate's O= and CN=, which
  the keys page and a PDF check's "signer" show). Exporter: name, English name; a second
  exporter's name on the negative list, with a block reason and a lift reason.
- Imported CA-issued seal key: the certificate's organisation and the CA's name. The seal
  image's file name is not kept at all (proved: it is on no page).
- User e-mail addresses (users have no other name) and API token names.
- Precheck page: pasted brand, model and note (the note is read, never shown), and the reference.
- What repeats the above: the audit trail (actors and details, page and history boxes), the
  outbox (recipients, subjects, bodies), error messages quoting input, and what pages echo:
  query strings and paths (filters, 404 pages, the language form's return address, also with
  quotes and brackets unencoded), a refused sign-in, block, lift and new exporter.

Fields whose domain refuses markup — codes of manufacturers, exporters and outlets, unified
social credit codes, outlet e-mail with spaces, user e-mail with anything a mail header would
read as another address — are tried too: their refusal (422, the field named, nothing written)
is the answer.

Payloads, in four groups, so every field gets every payload in four worlds rather than eleven
(a group fits in the 100 characters of a brand; shorter fields hold a cut): ``<script>``, both
attribute break-outs, ``</textarea>``, ``</style>``, Jinja ``{{ 7*7 }}`` and ``{% raw %}``
(shown literally, never 49), ``javascript:``, and the fetches a PDF renderer could make
(``<link rel=stylesheet href=file:///etc/passwd>``, ``<img src=file:///etc/passwd>``,
``<iframe src=http://169.254.169.254/>``). Each field's value starts with a tag of its own, so a
page can be asked for that very field.

How it is proved. A world per group and backend is built once through the real services,
pages and API (module scope, in one transaction rolled back at the end), then:

- pages, as every role that sees them, are parsed with ``html.parser``: every field a page
  shows is in its text or attribute values exactly as typed (so neither evaluated as a template
  nor escaped twice), and no element, attribute or link came from data (no script but the
  site's own files, no ``on*`` attribute, no ``javascript:`` or ``file:`` URL, none of the tags
  the payloads bring; the raw HTML never holds a payload). The check is shown to catch each
  payload put into a page raw. The site's scripts put data into pages with ``textContent``
  only, and the one ``|safe`` in the templates is the QR code drawn from the verification URL;
- JSON twins answer ``application/json`` and carry every value exactly as typed;
- the sealed PDF (read back with poppler's ``pdftotext -raw``) prints every value as text,
  the renderer asked only for ``data:`` URIs and the letter's stylesheet, the seal verifies, and
  the same payloads let through unescaped stop the render (the locked-down fetcher refuses
  them), so escaping is not the only wall;
- mail is one plain-text part (there is no HTML part to escape) holding the values literally,
  with a one-line Subject: names or references holding CR/LF never add a header.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.errors import MessageError
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from argon2 import PasswordHasher
from cryptography import x509
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape as markup_escape
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issuer import clock, create_app
from issuer.config import Settings
from issuer.domain.letter import LetterContent
from issuer.models import (
    AuditEntry,
    Exporter,
    ImportJob,
    Letter,
    Manufacturer,
    OutboxMessage,
    Outlet,
    RegisteredVehicle,
    SealKey,
    User,
)
from issuer.rendering import ResourceRefused, SealMark
from issuer.rendering import pdf as pdf_module
from issuer.services import accounts, organisations, outlets
from issuer.services.keys import certificate_of, generate_key
from issuer.services.mail import compose
from tests import factories
from tests.conftest import TODAY, _BoundDatabase

pytestmark = pytest.mark.xdist_group("markup-escaping")

ROOT = Path(__file__).resolve().parents[2]
REGISTERED_ON = TODAY.replace(day=1).isoformat()  # within 180 days of APPLYING_ON: a letter is needed
APPLYING_ON = TODAY.isoformat()

# -- the payloads ----------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
DOUBLE_QUOTE = '"><img src=x onerror=alert(1)>'
SINGLE_QUOTE = "'><svg onload=alert(1)>"
TEXTAREA = "</textarea><b>x"
STYLE = "</style><script>alert(2)</script>"
JINJA_EXPRESSION = "{{ 7*7 }}"
JINJA_RAW = "{% raw %}"
JAVASCRIPT_URL = "javascript:alert(1)"
CSS_LINK = "<link rel=stylesheet href=file:///etc/passwd>"
IMG_FILE = "<img src=file:///etc/passwd>"
IFRAME = "<iframe src=http://169.254.169.254/>"


@dataclass(frozen=True)
class Group:
    name: str
    payloads: tuple[str, ...]
    short: str  # for the 8 characters of a destination

    @property
    def text(self) -> str:
        return " ".join(self.payloads)


ALL_PAYLOADS = (
    SCRIPT, DOUBLE_QUOTE, SINGLE_QUOTE, TEXTAREA, STYLE, JINJA_EXPRESSION, JINJA_RAW, JAVASCRIPT_URL,
    CSS_LINK, IMG_FILE, IFRAME,
)  # fmt: skip
GROUPS = (
    Group("tags", (SCRIPT, DOUBLE_QUOTE, SINGLE_QUOTE), short="<b>x</b>"),
    Group("breakouts", (TEXTAREA, STYLE, JINJA_EXPRESSION, JINJA_RAW), short='"><b>x'),
    Group("fetches", (CSS_LINK, IMG_FILE), short="'><b>x"),
    Group("urls", (IFRAME, JAVASCRIPT_URL), short="{{7*7}}"),
)

# Elements none of the site's pages has: any of them in a page came from data.
FOREIGN_TAGS = frozenset({"b", "iframe", "frame", "frameset", "object", "embed", "base", "style", "applet"})
URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "data", "poster", "srcdoc"})


# -- reading pages ---------------------------------------------------------------------------------


class Page(HTMLParser):
    """A page as a browser's tokenizer sees it: start tags with their attributes, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.chunks: list[str] = []
        self.script_text: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()
        self.text = "".join(self.chunks)
        self.values = [value for _, attrs in self.tags for _, value in attrs if value]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in_script = tag in ("script", "style")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)
        else:
            self.chunks.append(data)

    def shows(self, value: str) -> bool:
        """``value`` is in the page as text, or as the value of an attribute (a form field)."""
        return value in self.text or any(value in v for v in self.values)


def live_markup(page: Page) -> list[str]:
    """Everything in the page that acts and did not come from the site's templates."""
    found = []
    for tag, attrs in page.tags:
        named = dict(attrs)
        if tag in FOREIGN_TAGS:
            found.append(f"<{tag} {attrs}>")
        if tag == "script" and (set(named) - {"src", "defer"} or not (named.get("src") or "").startswith("/static/")):
            found.append(f"script {attrs}")
        if tag == "link" and not (named.get("href") or "").startswith("/static/"):
            found.append(f"link {attrs}")
        if tag == "img" and not (named.get("src") or "").startswith("/"):
            found.append(f"img {attrs}")
        for name, value in attrs:
            if name.startswith("on"):
                found.append(f"<{tag} {name}={value!r}>")
            squeezed = re.sub(r"[\x00-\x20]", "", value or "").lower()
            if name in URL_ATTRIBUTES and squeezed.startswith(("javascript:", "vbscript:", "file:", "data:text")):
                found.append(f"<{tag} {name}={value!r}>")
    if "".join(page.script_text).strip():
        found.append("inline script or style text")
    return found


# -- the world -------------------------------------------------------------------------------------


@dataclass
class Browser:
    """A signed-in client; its forms carry the session's CSRF token (one per session)."""

    client: FlaskClient
    token: str

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
        return self.client.post(path, data={"csrf_token": self.token, **data}, **kwargs)


CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1) or match.group(2)


@dataclass
class World:
    group: Group
    app: Flask
    session: Session
    typed: dict[str, str]  # field -> the value typed
    shown: dict[str, str]  # field -> the value as the service keeps it (upper-cased VIN, ...)
    manufacturer: Manufacturer
    exporter: Exporter
    users: dict[str, User]
    tokens: dict[str, str]
    browsers: dict[str, Browser]
    approved_request: int
    open_request: int
    letter_number: str
    verification_code: str
    pdf: bytes
    fetched: list[str]
    job_id: int
    captured: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # label -> (html, fields)

    def api(self, role: str, method: str, path: str, **kwargs: Any) -> Any:
        return call_api(self.app, self.tokens[role], method, path, **kwargs)

    def anonymous(self) -> FlaskClient:
        client = self.app.test_client()
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
        return client


def call_api(app: Flask, token: str, method: str, path: str, **kwargs: Any) -> Any:
    return app.test_client().open(path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (32, 32), (200, 0, 0, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def csv_bytes(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def rfc4514_value(text: str) -> str:
    """``text`` as an attribute value of an RFC 4514 name (how certificate names are shown)."""
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, text)]).rfc4514_string().removeprefix("O=")


def multipart(fields: dict[str, str], file: bytes, name: str = "file") -> dict[str, Any]:
    """A PDF upload built here: werkzeug's test builder spools a large file to a temporary file
    it never closes."""
    boundary = "markup-test-boundary-9b1c"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    head = "".join(parts) + (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="letter.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    )
    body = head.encode() + file + f"\r\n--{boundary}--\r\n".encode()
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def browser_file_name(name: str) -> str:
    """A file name as a browser sends it in a form: a double quote becomes %22 (HTML's multipart
    encoding), the rest is sent as it is."""
    return name.replace('"', "%22")


def sign_in(app: Flask, user: User) -> Browser:
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    token = csrf_token(client.get("/login").get_data(as_text=True))
    answer = client.post("/login", data={"email": user.email, "password": factories.PASSWORD, "csrf_token": token})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return Browser(client, csrf_token(client.get("/account").get_data(as_text=True)))


class Builder:
    """Builds a world with the group's payloads in every field, step by step, through the real
    services, pages and API; ``typed`` records each field's value by its tag."""

    def __init__(self, app: Flask, session: Session, group: Group) -> None:
        self.app, self.session, self.group = app, session, group
        self.typed: dict[str, str] = {}
        self.captured: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.fetched: list[str] = []

    def value(self, tag: str, limit: int = 100) -> str:
        """The tag and the group's payloads, cut to the field's length."""
        self.typed[tag] = f"{tag} {self.group.text}"[:limit]
        return self.typed[tag]

    def address(self, tag: str) -> str:
        """For an outlet's e-mail, which holds no spaces: slashes separate what spaces would."""
        self.typed[tag] = f"{tag}/{self.group.text.replace(' ', '/')}@evil.test"
        return self.typed[tag]

    def capture(self, label: str, answer: Any, status: int, *fields: str) -> None:
        """Keep a page that only this moment shows (a refused form), to be checked with the rest."""
        assert answer.status_code == status, (label, answer.status_code, answer.get_data(as_text=True)[:300])
        self.captured[label] = (answer.get_data(as_text=True), fields)

    def organisations(self) -> None:
        settings: Settings = self.app.config["ISSUER_SETTINGS"]
        session, value = self.session, self.value
        self.maker = organisations.create_manufacturer(
            session=session,
            code="HOSTILE",
            name=value("MNAME", 200),
            name_en=value("MNAMEEN", 200),
            uscc=factories.uscc(4242),
            wmis=("LGX",),
            manufacturer_type="vehicle_manufacturer",
        )
        self.exporter = organisations.create_exporter(
            session=session,
            code="HX1",
            name=value("XNAME", 200),
            name_en=value("XNAMEEN", 200),
            uscc=factories.uscc(4343),
        )
        self.blocked = organisations.create_exporter(
            session=session, code="HX2", name=value("X2NAME", 200), uscc=factories.uscc(4444)
        )
        generate_key(
            session=session,
            manufacturer_code=self.maker.code,
            keys_dir=settings.keys_dir,
            passphrase=settings.seal_passphrase,
        )
        # Addresses that mail takes may still hold what a template engine would take for code.
        self.users = {
            role: accounts.create_user(
                session=session,
                email=f"{role}.{{{{7*7}}}}.{{%raw%}}.o'neil@evil.test",
                role=role,
                password=factories.PASSWORD,
                manufacturer_code=self.maker.code if role in ("aftersales", "manufacturer_admin") else None,
                exporter_code=self.exporter.code if role == "exporter" else None,
            )
            for role in ("exporter", "aftersales", "manufacturer_admin", "platform_admin")
        }
        for user in self.users.values():
            user.locale = "en"
        session.commit()
        self.tokens = {
            role: accounts.create_token(session=session, email=user.email, name=value(f"TOKEN{role[:3].upper()}"))
            for role, user in self.users.items()
        }
        self.browsers = {role: sign_in(self.app, user) for role, user in self.users.items()}
        outlets.create_outlet(
            session=session,
            manufacturer=self.maker,
            actor=self.users["aftersales"].email,
            values={
                "code": "KZ-1",
                "country": "KZ",
                "name": value("ONAME", 200),
                "provider": value("OPROVIDER", 200),
                "address": value("OADDRESS", 500),
                "city": value("OCITY", 100),
                "phone": value("OPHONE", 50),
                "email": self.address("OEMAIL"),
                "brands": "",
                "valid_from": TODAY.replace(year=TODAY.year - 1),
            },
        )

    def registry(self) -> None:
        """The production registry, uploaded through its page: brand and model hold payloads, so
        does the file's name, and an invalid row's VIN is quoted by the error list. A second
        outlet serves only the hostile brand (its brand list is shown and printed)."""
        value = self.value
        self.vins = factories.random_vins("LGX", 5, seed=5)
        rows = [(vin, value("BRAND"), value("MODEL"), "2025-05-01") for vin in self.vins]
        rows.append((value("REGVIN", 64), "X", "Y", ""))
        registry_file = csv_bytes(("vin", "brand", "model", "production_date"), rows)
        answer = self.browsers["aftersales"].post(
            "/registry/vehicles",
            {
                "file": (io.BytesIO(registry_file), browser_file_name(f"{self.group.text} FILENAME.csv")),
                "skip_invalid": "y",
            },
            content_type="multipart/form-data",
        )
        assert answer.status_code == 303, answer.get_data(as_text=True)
        self.job = self.session.scalars(select(ImportJob).order_by(ImportJob.id.desc())).first()
        assert self.job is not None
        assert self.job.state == "done", (self.job.state, self.job.error)
        assert count(self.session, RegisteredVehicle) == len(self.vins)
        outlets.create_outlet(
            session=self.session,
            manufacturer=self.maker,
            actor=self.users["aftersales"].email,
            values={
                "code": "KZ-2",
                "country": "KZ",
                "name": "Second service",
                "provider": "Provider LLP",
                "address": "1 Main St",
                "brands": self.typed["BRAND"],
                "valid_from": TODAY.replace(year=TODAY.year - 1),
            },
        )

    def file_request(self, reference: str, vehicles: list[tuple[str, str]]) -> int:
        body = {
            "manufacturer": self.maker.code,
            "application_date": APPLYING_ON,
            "reference": reference,
            "vehicles": [
                {
                    "vin": vin,
                    "brand": self.typed["BRAND"],
                    "model": self.typed["MODEL"],
                    "registration_date": REGISTERED_ON,
                    "destination": destination,
                }
                for vin, destination in vehicles
            ],
        }
        answer = call_api(self.app, self.tokens["exporter"], "POST", "/api/v1/requests", json=body)
        assert answer.status_code == 201, answer.get_data(as_text=True)
        return int(answer.get_json()["id"])

    def requests_and_letter(self) -> None:
        """A request decided (one vehicle approved, one rejected, a malformed VIN and an unknown
        destination left refused) and one left open, with a vehicle for a country without an
        outlet. Deciding seals the letter; the renderer's every fetch is recorded."""
        value, vins = self.value, self.vins
        self.approved = self.file_request(
            value("REFERENCE", 200),
            [(vins[0], "KZ"), (vins[1], "KZ"), (value("REQVIN", 64), "KZ"), (vins[2], self.group.short)],
        )
        self.open_request = self.file_request(value("REFERENCE2", 200), [(vins[3], "KZ"), (vins[4], "TH")])
        real_fetch = pdf_module.LockedDownFetcher.fetch

        def recording_fetch(fetcher: Any, url: str, headers: Any = None) -> Any:
            self.fetched.append(url)
            return real_fetch(fetcher, url, headers)

        decision = {
            "approve": "all_eligible",
            "reject": [{"vin": vins[1], "reason": value("REJECTION", 500)}],
            "note": value("NOTE", 500),
        }
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pdf_module.LockedDownFetcher, "fetch", recording_fetch)
            path = f"/api/v1/requests/{self.approved}/decision"
            answer = call_api(self.app, self.tokens["aftersales"], "POST", path, json=decision)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        self.letter = self.session.scalar(select(Letter).where(Letter.number == answer.get_json()["letter_number"]))
        assert self.letter is not None
        assert self.letter.pdf is not None

    def refused_forms_and_revocation(self) -> None:
        """Forms refused with 422 show what was typed again (a revocation without its
        confirmation, an outlet edit with an unknown country, an outlet import with a bad
        line, a decision with no vehicle ticked); then the letter is revoked for real."""
        value, staff, short = self.value, self.browsers["aftersales"], self.group.short
        revoke = f"/letters/{self.letter.number}/revoke"
        answer = staff.post(revoke, {"reason": value("REVOKEDRAFT", 500)})
        self.capture("revoke form refused", answer, 422, "REVOKEDRAFT")
        outlet_form = {
            "country": short,
            "name": value("EDITNAME", 200),
            "provider": value("EDITPROVIDER", 200),
            "address": value("EDITADDRESS", 500),
            "brands": value("EDITBRANDS", 1000),
            "valid_from": "2025-01-01",
            "active": "y",
        }
        fields = ("EDITNAME", "EDITPROVIDER", "EDITADDRESS", "EDITBRANDS")
        self.capture("outlet form refused", staff.post("/registry/outlets/KZ-1", outlet_form), 422, *fields)
        line = ("BAD-1", short, value("IMPORTNAME", 200), "P", "A", "", "", "", "", "2025-01-01", "")
        upload = {"file": (io.BytesIO(csv_bytes(outlets.OUTLET_COLUMNS, [line])), "outlets.csv")}
        answer = staff.post("/registry/outlets/import", upload, content_type="multipart/form-data")
        self.typed["IMPORTCOUNTRY"] = repr(short)  # the error quotes the country as typed
        self.capture("outlet import refused", answer, 422, "IMPORTCOUNTRY")
        decision = {"action": "reject", "reason": value("DRAFTREASON", 500), "note": value("DRAFTNOTE", 500)}
        answer = staff.post(f"/requests/{self.open_request}/decision", decision)
        self.capture("decision refused", answer, 422, "DRAFTREASON", "DRAFTNOTE")
        answer = staff.post(revoke, {"reason": value("REVOCATION", 500), "confirm": "y"})
        assert answer.status_code == 302, answer.get_data(as_text=True)

    def negative_list(self) -> None:
        """A block lifted with a reason, and one in force."""
        actor = self.users["aftersales"].email
        codes = {"manufacturer_code": self.maker.code, "exporter_code": self.blocked.code, "actor": actor}
        organisations.block_exporter(session=self.session, reason=self.value("BLOCKED", 2000), **codes)
        organisations.unblock_exporter(session=self.session, reason=self.value("LIFTED", 2000), **codes)
        organisations.block_exporter(session=self.session, reason=self.value("INFORCE", 2000), **codes)

    def keys(self) -> None:
        """A CA-issued key whose certificate names the manufacturer and its CA with payloads, and
        a seal image whose file name holds them (uploaded files' names are never kept)."""
        admin, code = self.browsers["manufacturer_admin"], self.maker.code
        key_pem, chain_pem = factories.ca_issued(
            self.maker.uscc,
            organisation=self.value("CERTORG", 200),
            ca_common_name=self.value("CERTCA", 64),  # X.509's limit for a common name
            content_commitment=True,
        )
        files = {
            "key": (io.BytesIO(key_pem), browser_file_name(f"{self.group.text}.pem")),
            "certificate": (io.BytesIO(chain_pem), "chain.pem"),
        }
        answer = admin.post(f"/admin/keys/{code}/import", files, content_type="multipart/form-data")
        assert answer.status_code == 302, answer.get_data(as_text=True)
        image = {"image": (io.BytesIO(png()), browser_file_name(f"SEALFILE {self.group.text}.png"))}
        answer = admin.post(f"/admin/keys/{code}/seal-image", image, content_type="multipart/form-data")
        assert answer.status_code == 302, answer.get_data(as_text=True)

    def precheck(self) -> None:
        value = self.value
        columns = ("vin", "brand", "model", "registration_date", "destination", "export_transfer_date", "note")
        row = (self.vins[0], value("PREBRAND"), value("PREMODEL"), REGISTERED_ON, "KZ", "", value("PRENOTE", 200))
        form = {
            "application_date": APPLYING_ON,
            "reference": value("PREREF", 200),
            "vehicles": "\n".join(["\t".join(columns), "\t".join(row)]),
        }
        answer = self.browsers["exporter"].post("/precheck", form)
        self.capture("precheck report", answer, 200, "PREBRAND", "PREMODEL", "PREREF")

    def world(self) -> World:
        # As kept: surrounding and repeated spaces go (a cut may end in one), VINs are upper-cased.
        shown = {name: " ".join(text.split()) for name, text in self.typed.items()}
        shown["REQVIN"] = shown["REQVIN"].upper()
        shown["REGVINQUOTED"] = repr(shown["REGVIN"])[1:-1]  # the import's error list quotes it
        shown["DESTINATION"] = self.group.short.upper()
        shown["JOBFILE"] = self.job.filename
        assert self.job.filename.endswith("FILENAME.csv"), self.job.filename
        assert set(self.job.filename) & set("<>{"), self.job.filename
        shown.update({f"EMAIL{role[:3].upper()}": user.email for role, user in self.users.items()})
        # Certificates are shown as RFC 4514 strings (which escape some characters themselves).
        query = select(SealKey).where(SealKey.manufacturer_id == self.maker.id).order_by(SealKey.id)
        generated, imported = self.session.scalars(query)
        shown["SEALSUBJECT"] = certificate_of(generated).subject.rfc4514_string()
        shown["CERTSUBJECT"] = certificate_of(imported).subject.rfc4514_string()
        shown["CERTISSUER"] = certificate_of(imported).issuer.rfc4514_string()
        assert rfc4514_value(self.typed["MNAME"]) in shown["SEALSUBJECT"]
        assert rfc4514_value(self.typed["CERTORG"]) in shown["CERTSUBJECT"]
        self.session.expire_all()
        return World(
            group=self.group,
            app=self.app,
            session=self.session,
            typed=self.typed,
            shown=shown,
            manufacturer=self.maker,
            exporter=self.exporter,
            users=self.users,
            tokens=self.tokens,
            browsers=self.browsers,
            approved_request=self.approved,
            open_request=self.open_request,
            letter_number=self.letter.number,
            verification_code=self.letter.verification_code,
            pdf=self.letter.pdf or b"",
            fetched=self.fetched,
            job_id=self.job.id,
            captured=self.captured,
        )


def build_world(app: Flask, session: Session, group: Group) -> World:
    builder = Builder(app, session, group)
    builder.organisations()
    builder.registry()
    builder.requests_and_letter()
    builder.refused_forms_and_revocation()
    builder.negative_list()
    builder.keys()
    builder.precheck()
    return builder.world()


@pytest.fixture(scope="module", params=GROUPS, ids=[g.name for g in GROUPS])
def world(request: pytest.FixtureRequest, engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per payload group and backend, in a transaction rolled back at the end."""
    connection = engine.connect()
    transaction = connection.begin()
    database = _BoundDatabase(connection)
    folder = tmp_path_factory.mktemp("markup")
    settings = Settings(
        database_url=str(engine.url),
        secret_key="test-secret-" + uuid.uuid4().hex,
        keys_dir=folder / "keys",
        key_passphrase="test-passphrase",
        public_url="http://issuer.test",
        ratelimit_enabled=False,
    )
    app = create_app(settings, database=database)  # type: ignore[arg-type]
    app.config.update(TESTING=True, ISSUER_IMPORTS_DIR=str(folder / "imports"))
    session = database.session()
    try:
        with pytest.MonkeyPatch.context() as patch, clock.frozen(TODAY):
            # Users are signed in with real passwords; a cheap Argon2 cost keeps that quick.
            patch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
            yield build_world(app, session, request.param)
    finally:
        session.close()
        transaction.rollback()
        connection.close()


def unescaped(html: str, payloads: tuple[str, ...]) -> list[str]:
    """The payloads with markup characters that the raw HTML holds as they were typed."""
    return [payload for payload in payloads if set(payload) & set("<>\"'") and payload in html]


def html_of(answer: Any) -> str:
    assert answer.status_code == 200, (answer.status_code, answer.get_data(as_text=True)[:500])
    assert answer.mimetype == "text/html"
    return answer.get_data(as_text=True)


def check_page(
    world: World, label: str, html: str, fields: tuple[str, ...], literals: tuple[str, ...] = ()
) -> list[str]:
    """What is wrong with one page: a field (or a literal typed just now) not shown as typed,
    or markup that came from data."""
    page = Page(html)
    problems = [f"{label}: live markup {found}" for found in live_markup(page)]
    problems += [f"{label}: {name} is not shown as typed" for name in fields if not page.shows(world.shown[name])]
    problems += [f"{label}: {text[:40]!r}… is not shown as typed" for text in literals if not page.shows(text)]
    problems += [f"{label}: the raw HTML holds {p!r} unescaped" for p in unescaped(html, world.group.payloads)]
    return problems


# Pages, who reads them, and the fields each shows.
def pages(world: World) -> list[tuple[str, str, tuple[str, ...]]]:
    n, request, open_request = world.letter_number, world.approved_request, world.open_request
    outlet_fields = ("ONAME", "OPROVIDER", "OADDRESS", "OCITY", "OPHONE", "OEMAIL")
    letter_fields = ("MNAME", "MNAMEEN", "XNAME", "XNAMEEN", "BRAND", "MODEL", "REVOCATION", *outlet_fields)
    request_fields = ("MNAME", "XNAME", "REFERENCE", "BRAND", "MODEL", "REQVIN", "DESTINATION", "REJECTION", "NOTE")
    staff_emails = ("EMAILAFT", "EMAILMAN")
    return [
        ("exporter", "/requests", ("REFERENCE", "REFERENCE2", "MNAME")),
        ("exporter", f"/requests/{request}", request_fields),
        ("exporter", f"/requests/{open_request}", ("XNAME", "REFERENCE2", "BRAND", "MODEL")),
        ("exporter", "/letters", ("REFERENCE",)),
        ("exporter", f"/letters/{n}", letter_fields),
        ("exporter", "/account", ("TOKENEXP",)),
        ("exporter", "/precheck", ()),
        ("aftersales", "/requests", ("REFERENCE2", "XNAME")),
        ("aftersales", "/requests?status=all", ("REFERENCE", "REFERENCE2", "XNAME")),
        ("aftersales", f"/requests/{request}", (*request_fields, "EMAILAFT")),
        ("aftersales", f"/requests/{open_request}", ("XNAME", "REFERENCE2", "BRAND", "MODEL", *outlet_fields)),
        ("aftersales", "/letters", ("REFERENCE",)),
        ("aftersales", f"/letters/{n}", (*letter_fields, "EMAILAFT")),
        ("aftersales", f"/letters/{n}/revoke", ()),
        ("aftersales", "/registry/outlets", ("ONAME",)),
        ("aftersales", "/registry/outlets/KZ-1", (*outlet_fields, "EMAILAFT")),
        ("aftersales", "/registry/outlets/KZ-2", ("BRAND",)),
        ("aftersales", "/registry/vehicles", ("JOBFILE",)),
        ("aftersales", f"/registry/vehicles/imports/{world.job_id}", ("JOBFILE", "REGVINQUOTED")),
        ("aftersales", "/registry/blocks", ("X2NAME", "BLOCKED", "LIFTED", "INFORCE", "EMAILAFT")),
        ("aftersales", "/registry/coverage", ("BRAND",)),
        ("aftersales", "/account", ("TOKENAFT",)),
        ("manufacturer_admin", "/admin/users", staff_emails),
        ("manufacturer_admin", f"/admin/users/{world.users['aftersales'].id}", ("EMAILAFT",)),
        ("manufacturer_admin", f"/admin/keys/{world.manufacturer.code}", ("SEALSUBJECT", "CERTSUBJECT", "CERTISSUER")),
        ("manufacturer_admin", "/admin/outbox", ("XNAME", "EMAILAFT", "EMAILEXP")),
        ("manufacturer_admin", "/audit", ("REFERENCE", "NOTE", "REVOCATION", "BLOCKED", "LIFTED", "EMAILAFT")),
        ("manufacturer_admin", f"/letters/{n}", letter_fields),
        ("manufacturer_admin", "/registry/outlets/KZ-1", outlet_fields),
        ("platform_admin", "/admin/manufacturers", ("MNAME",)),
        ("platform_admin", f"/admin/manufacturers/{world.manufacturer.code}", ("MNAME", "MNAMEEN")),
        ("platform_admin", "/admin/exporters", ("XNAME", "XNAMEEN", "X2NAME")),
        ("platform_admin", "/admin/users", (*staff_emails, "EMAILEXP", "EMAILPLA")),
        ("platform_admin", "/admin/keys", ("MNAME",)),
        ("platform_admin", "/admin/outbox", ("XNAME",)),
        ("platform_admin", "/audit", ("REFERENCE", "NOTE", "REVOCATION")),
        ("platform_admin", "/requests?status=all", ("REFERENCE", "XNAME", "MNAME")),
    ]


def test_every_page_shows_every_field_as_text(world: World) -> None:
    problems: list[str] = []
    seen: list[str] = []
    for role, path, fields in pages(world):
        html = html_of(world.browsers[role].get(path))
        seen.append(html)
        problems += check_page(world, f"{role} {path}", html, fields)
    for label, (html, fields) in world.captured.items():
        seen.append(html)
        problems += check_page(world, label, html, fields)
    # The seal image's file name is not kept, so no page can show it.
    problems += ["a page shows the seal image's file name" for html in seen if "SEALFILE" in html]
    assert not problems, "\n".join(problems)


def test_verification_pages_show_the_letter_as_text(world: World) -> None:
    """The public pages: by number and code (the QR code's target), and by uploading the PDF,
    whose seal's signer is the certificate subject holding the manufacturer's name."""
    visitor = world.anonymous()
    letter_fields = ("MNAME", "MNAMEEN", "XNAME", "XNAMEEN", "BRAND", "MODEL", "REVOCATION", "ONAME", "OPROVIDER")
    path = f"/verify/{world.letter_number}?code={world.verification_code}"
    problems = check_page(world, path, html_of(visitor.get(path)), letter_fields)
    token = csrf_token(html_of(visitor.get("/verify")))
    answer = visitor.post("/verify", **multipart({"csrf_token": token}, world.pdf))
    problems += check_page(world, "POST /verify", html_of(answer), (*letter_fields, "SEALSUBJECT"))
    assert not problems, "\n".join(problems)


def test_mail_pages_in_the_outbox_show_subject_and_body_as_text(world: World) -> None:
    messages = list(world.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    kinds = {m.kind for m in messages}
    assert {"request.submitted", "request.decided", "letter.revoked"} <= kinds, kinds
    problems: list[str] = []
    for message in messages:
        html = html_of(world.browsers["manufacturer_admin"].get(f"/admin/outbox/{message.id}"))
        page = Page(html)
        problems += [f"mail {message.id}: live markup {found}" for found in live_markup(page)]
        for text in (message.subject, message.body, message.recipient):
            if not page.shows(text):
                problems.append(f"mail {message.id} ({message.kind}): {text[:60]!r}… is not shown as written")
    assert not problems, "\n".join(problems)


# Paths and query strings whose values pages echo (filters, not-found messages, the login form).
def echoed(world: World) -> list[tuple[str | None, str]]:
    quoted = url_quote(world.group.text)
    return [
        (None, f"/verify?number={quoted}&code={quoted}"),
        (None, f"/verify/{quoted}?code={quoted}"),
        (None, f"/login?next={quoted}"),
        (None, f"/no-such-page/{quoted}"),
        ("exporter", f"/letters/{quoted}"),
        ("exporter", f"/letters?status={quoted}"),
        ("exporter", f"/requests?status={quoted}&page={quoted}"),
        ("aftersales", f"/registry/outlets?country={quoted}&active={quoted}"),
        ("aftersales", f"/registry/outlets/{quoted}"),
        ("aftersales", f"/registry/coverage?period={quoted}"),
        ("manufacturer_admin", f"/audit?object_id={quoted}&action={quoted}&object_type={quoted}&page={quoted}"),
        ("manufacturer_admin", f"/admin/outbox?state={quoted}&page={quoted}"),
        ("platform_admin", f"/admin/keys?manufacturer={quoted}"),
        ("platform_admin", f"/registry/coverage?manufacturer={quoted}"),
    ]


def url_quote(text: str) -> str:
    return quote(text, safe="")


def test_values_echoed_from_the_address_or_a_refused_form_are_text(world: World) -> None:
    problems: list[str] = []
    for role, path in echoed(world):
        client = world.browsers[role].client if role else world.anonymous()
        answer = client.get(path, follow_redirects=True)
        assert answer.status_code < 500, (path, answer.status_code)
        if answer.mimetype == "text/html":
            problems += check_page(world, f"{role} {path} ({answer.status_code})", answer.get_data(as_text=True), ())
    # A query string as a browser may send it, quotes and brackets unencoded (the language
    # form's hidden field repeats the page's address).
    raw = world.group.text.replace(" ", "+")
    for role, path in (("exporter", "/letters"), (None, "/verify"), (None, "/login")):
        client = world.browsers[role].client if role else world.anonymous()
        answer = client.get(path, query_string=f"status={raw}&next={raw}", follow_redirects=True)
        problems += check_page(world, f"{path}?{raw}", answer.get_data(as_text=True), ())
    # The audit filter keeps what was typed in its field.
    reference = world.shown["REFERENCE"]
    html = world.browsers["manufacturer_admin"].get(f"/audit?object_id={url_quote(reference)}").get_data(as_text=True)
    problems += check_page(world, "audit filter", html, (), (reference,))
    # Refused forms show what was typed again: a sign-in, a block of an unknown exporter, a lift
    # of an exporter not on the list, a new exporter with a bad credit code.
    visitor = world.anonymous()
    token = csrf_token(html_of(visitor.get("/login")))
    answer = visitor.post("/login", data={"email": reference, "password": "x", "csrf_token": token})
    assert 400 <= answer.status_code < 500
    problems += check_page(world, "refused sign-in", answer.get_data(as_text=True), (), (reference,))
    staff, admin, text = world.browsers["aftersales"], world.browsers["platform_admin"], world.group.text
    refused = [
        ("block", staff.post("/registry/blocks", {"exporter": text[:64], "reason": text}), (text,)),
        ("lift", staff.post(f"/registry/blocks/{url_quote(text)}/lift", {"reason": text}), ()),
        (
            "new exporter",
            admin.post("/admin/exporters/new", {"code": "NEWX", "name": text, "name_en": text, "uscc": "X"}),
            (text,),
        ),
    ]
    for label, answer, literals in refused:
        assert 400 <= answer.status_code < 500, (label, answer.status_code)
        problems += check_page(world, f"refused {label}", answer.get_data(as_text=True), (), literals)
    assert not problems, "\n".join(problems)


# -- JSON twins ------------------------------------------------------------------------------------


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def json_of(answer: Any, status: int = 200) -> Any:
    assert answer.status_code == status, answer.get_data(as_text=True)[:500]
    assert answer.mimetype == "application/json"
    return json.loads(answer.get_data(as_text=True))


def test_json_twins_carry_every_value_exactly(world: World) -> None:
    n, code = world.letter_number, world.verification_code
    letter_fields = ("MNAME", "MNAMEEN", "XNAME", "XNAMEEN", "REFERENCE", "BRAND", "MODEL", "REVOCATION")
    outlet_fields = ("ONAME", "OPROVIDER", "OADDRESS", "OCITY", "OPHONE", "OEMAIL")
    request_fields = ("REFERENCE", "BRAND", "MODEL", "REQVIN", "DESTINATION", "REJECTION")
    calls = [
        ("exporter", "/api/v1/requests", ("REFERENCE", "REFERENCE2")),
        ("exporter", f"/api/v1/requests/{world.approved_request}", request_fields),
        ("aftersales", f"/api/v1/requests/{world.approved_request}", request_fields),
        ("exporter", f"/api/v1/letters/{n}", (*letter_fields, *outlet_fields)),
        ("aftersales", f"/api/v1/letters/{n}", (*letter_fields, *outlet_fields, "EMAILAFT")),
        ("aftersales", "/api/v1/outlets", (*outlet_fields, "BRAND")),
        ("aftersales", "/api/v1/outlets/KZ-1", outlet_fields),
    ]
    problems: list[str] = []
    for role, path, fields in calls:
        found = strings_in(json_of(world.api(role, "GET", path)))
        problems += [f"{role} {path}: {name} is not there exactly" for name in fields if world.shown[name] not in found]
    found = strings_in(json_of(world.anonymous().get(f"/api/v1/verify/{n}?code={code}")))
    problems += [f"verify: {name} is not there exactly" for name in letter_fields if world.shown[name] not in found]
    answer = world.anonymous().post("/api/v1/verify", **multipart({}, world.pdf))
    body = json_of(answer)
    assert body["signature"]["signer"] == world.shown["SEALSUBJECT"]
    problems += [f"verify upload: {name}" for name in letter_fields if world.shown[name] not in strings_in(body)]
    status = json_of(world.browsers["aftersales"].get(f"/registry/vehicles/imports/{world.job_id}/status"))
    assert any(world.shown["REGVINQUOTED"] in s for s in strings_in(status)), status
    assert not problems, "\n".join(problems)


def test_the_sites_scripts_insert_data_as_text_only() -> None:
    """The pages' scripts never parse data as HTML: no innerHTML and kin, no eval; the one
    that shows a JSON answer (the import progress) writes it with textContent."""
    scripts = sorted((ROOT / "issuer" / "static" / "js").glob("*.js"))
    assert scripts
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|\.html\(")
    timer_strings = re.compile(r"set(Timeout|Interval)\(\s*[\"'`]")
    for script in scripts:
        source = script.read_text(encoding="utf-8")
        assert not sinks.search(source), script.name
        assert not timer_strings.search(source), script.name
    progress = (ROOT / "issuer" / "static" / "js" / "registry.js").read_text(encoding="utf-8")
    assert "text.textContent = format(" in progress
    # Markup marked safe in a template is only the QR code, drawn from the verification URL.
    safe = [
        (path.name, line)
        for path in (ROOT / "templates").rglob("*.html")
        for line in path.read_text(encoding="utf-8").splitlines()
        if "|safe" in line.replace(" ", "") or "autoescape false" in line
    ]
    assert [name for name, _ in safe] == ["detail.html"], safe
    assert "qr_svg|safe" in safe[0][1]


@pytest.mark.parametrize("payload", ALL_PAYLOADS)
def test_the_page_check_sees_each_payload_let_through(payload: str) -> None:
    """The page check is not blind: a payload put into a page raw (as ``|safe`` would), in a
    textarea and in an attribute, is found — unless it is plain text in HTML anyway."""
    html = f'<html><body><textarea>{payload}</textarea><input value="{payload}"></body></html>'
    if payload in (JINJA_EXPRESSION, JINJA_RAW, JAVASCRIPT_URL):
        assert not live_markup(Page(html))
        assert not unescaped(html, (payload,))
    else:
        assert live_markup(Page(html)), payload
        assert unescaped(html, (payload,)) == [payload]
    for link in ('<a href="javascript:alert(1)">x</a>', '<a href=" JaVaScRiPt:alert(1)">x</a>'):
        assert live_markup(Page(link))


# -- the sealed PDF --------------------------------------------------------------------------------

PDF_FIELDS = (
    "MNAME", "MNAMEEN", "XNAME", "XNAMEEN", "REFERENCE", "BRAND", "MODEL",
    "ONAME", "OPROVIDER", "OADDRESS", "OCITY", "OPHONE", "OEMAIL",
)  # fmt: skip


def pdf_text(pdf: bytes, folder: Path) -> str:
    """The PDF's text in the order it was drawn (``-raw``: two neighbouring cells that wrap are
    not read line by line across each other), without whitespace or hyphens (cells wrap long
    values; pdftotext drops a hyphen where a line breaks after it)."""
    path = folder / "letter.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return squeezed(text)


def squeezed(text: str) -> str:
    return "".join(text.split()).replace("-", "")


def test_the_sealed_pdf_prints_every_value_as_text_fetches_nothing_and_verifies(world: World, tmp_path: Path) -> None:
    text = pdf_text(world.pdf, tmp_path)
    missing = [name for name in PDF_FIELDS if squeezed(world.shown[name]) not in text]
    assert not missing, missing
    if JINJA_EXPRESSION in world.group.payloads:
        assert squeezed(JINJA_EXPRESSION) in text
    # The renderer asked for its inline images and the letter's own stylesheet, nothing else.
    stylesheet = (pdf_module.ASSET_DIR / pdf_module.STYLESHEET_NAME).resolve().as_uri()
    assert stylesheet in world.fetched
    assert [url for url in world.fetched if not url.startswith("data:image/")] == [stylesheet]
    assert b"root:x:0:0" not in world.pdf
    answer = json_of(world.anonymous().post("/api/v1/verify", **multipart({}, world.pdf)))
    assert answer["authentic"] is True, answer
    signature = answer["signature"]
    assert (signature["valid"], signature["intact"], signature["covers_whole_file"]) == (True, True, True)
    assert answer["letter_number"] == world.letter_number


def test_payloads_let_through_unescaped_still_fetch_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Escaping is not the only wall. The letter's real HTML, with the group's payloads put back
    unescaped (as a template bug would), is laid out by the sandbox: a payload that makes
    WeasyPrint fetch stops the render naming the URL (LockedDownFetcher), and the others (an
    iframe, a script: WeasyPrint loads or runs neither) fetch nothing at all."""
    letter = world.session.scalar(select(Letter).where(Letter.number == world.letter_number))
    assert letter is not None
    html = pdf_module.letter_html(
        LetterContent.from_json(letter.content),
        verify_url=f"http://issuer.test/verify/{letter.number}?code={letter.verification_code}",
        seal=SealMark(kid="kid", algorithm="ECDSA-secp256r1-SHA256"),
    )
    for payload in world.group.payloads:
        escaped = str(markup_escape(payload))
        assert escaped in html, payload
        html = html.replace(escaped, payload)
    fetched: list[str] = []
    real_fetch = pdf_module.LockedDownFetcher.fetch

    def recording_fetch(self: Any, url: str, headers: Any = None) -> Any:
        fetched.append(url)
        return real_fetch(self, url, headers)

    monkeypatch.setattr(pdf_module.LockedDownFetcher, "fetch", recording_fetch)
    fetching = [p for p in world.group.payloads if p in (CSS_LINK, IMG_FILE)]
    if fetching:
        with pytest.raises(ResourceRefused) as refused:
            pdf_module._layout(html)
        assert refused.value.url == "file:///etc/passwd"
    else:
        pdf_module._layout(html)
    outside = [url for url in fetched if not url.startswith(("data:image/", (pdf_module.ASSET_DIR.as_uri())))]
    assert outside == (["file:///etc/passwd"] if fetching else []), outside


@pytest.mark.parametrize(
    "markup",
    [
        IFRAME,
        "<object data=http://169.254.169.254/latest/meta-data></object>",
        "<embed src=http://169.254.169.254/latest/meta-data>",
        '<p style="background: url(http://169.254.169.254/)">x</p>',
        "</style><style>@import url(http://169.254.169.254/);</style>",
        CSS_LINK,
        IMG_FILE,
    ],
)
def test_the_renderer_never_fetches_what_markup_asks_for(markup: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each way HTML can ask WeasyPrint for a resource, asked of the cloud metadata address or a
    local file: refused by the fetcher before any connection, or (an iframe) never asked."""
    fetched: list[str] = []
    real_fetch = pdf_module.LockedDownFetcher.fetch

    def recording_fetch(self: Any, url: str, headers: Any = None) -> Any:
        fetched.append(url)
        return real_fetch(self, url, headers)

    monkeypatch.setattr(pdf_module.LockedDownFetcher, "fetch", recording_fetch)
    html = f'<html lang="zh-Hans"><head><style>p {{}}</style></head><body><p>确认书</p>{markup}</body></html>'
    if markup == IFRAME:
        pdf_module._layout(html)
        assert fetched == []
        return
    with pytest.raises(ResourceRefused) as refused:
        pdf_module._layout(html)
    assert fetched == [refused.value.url]
    assert refused.value.url.startswith(("http://169.254.169.254/", "file:///etc/passwd"))


# -- e-mail ----------------------------------------------------------------------------------------

MAIL_FIELDS = {
    "request.submitted": ("MNAME", "MNAMEEN", "XNAME", "XNAMEEN"),
    "request.decided": ("MNAME", "MNAMEEN", "REFERENCE", "REJECTION", "NOTE"),
    "letter.revoked": ("MNAME", "MNAMEEN", "REVOCATION"),
}
MAIL_HEADERS = {
    "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
    "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}  # fmt: skip


def sent_form(message: OutboxMessage) -> Any:
    """The message as the SMTP server would receive it, parsed back."""
    raw = compose(
        recipient=message.recipient,
        subject=message.subject,
        body=message.body,
        mail_from="Issuer <noreply@issuer.test>",
        written_at=message.created_at,
    ).as_bytes()
    return message_from_bytes(raw, policy=email_policy.default)


def test_mail_is_one_plain_text_part_holding_every_value_literally(world: World) -> None:
    messages = list(world.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    assert {m.kind for m in messages} >= set(MAIL_FIELDS)
    for message in messages:
        for name in MAIL_FIELDS.get(message.kind, ()):
            assert world.shown[name] in message.body, (message.kind, name)
        assert not set(message.subject) & {"\r", "\n"}
        parsed = sent_form(message)
        assert set(parsed.keys()) == MAIL_HEADERS, parsed.keys()
        # Encoded words move spaces around CJK text when folded and read back; nothing else.
        assert "".join(parsed["Subject"].split()) == "".join(message.subject.split())
        assert [a.addr_spec for a in parsed["To"].addresses] == [message.recipient]
        assert not parsed.is_multipart()
        assert parsed.get_content_type() == "text/plain"
        assert parsed.get_content() == message.body
    submitted = next(m for m in messages if m.kind == "request.submitted")
    assert world.shown["XNAME"] in submitted.subject
    assert world.shown["XNAMEEN"] in submitted.subject


def test_line_breaks_in_names_and_references_never_add_a_mail_header(world: World) -> None:
    """Services fold line breaks into spaces before they store a name or reference, and the
    subject is made one line again when mail is written, should a name in the database still
    hold one (written by hand, or before these rules)."""
    injected = "HX3\r\nBcc: victim@evil.test\r\n\r\n<script>alert(1)</script>"
    exporter = organisations.create_exporter(
        session=world.session, code="HX3", name=injected, uscc=factories.uscc(4545)
    )
    assert exporter.name == "HX3 Bcc: victim@evil.test <script>alert(1)</script>"
    answer = world.api(
        "exporter",
        "POST",
        "/api/v1/requests",
        json={
            "manufacturer": world.manufacturer.code,
            "application_date": APPLYING_ON,
            "reference": injected,
            "vehicles": [plain_vehicle("LGXC74C43S0123456")],
        },
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.get_json()["reference"] == "HX3 Bcc: victim@evil.test <script>alert(1)</script>"
    session = world.session
    session.expire_all()
    own = session.get(Exporter, world.exporter.id)
    assert own is not None
    kept = own.name
    own.name = injected  # as if written by hand
    session.commit()
    try:
        answer = world.api(
            "exporter",
            "POST",
            "/api/v1/requests",
            json={
                "manufacturer": world.manufacturer.code,
                "application_date": APPLYING_ON,
                "vehicles": [plain_vehicle("LGXC74C43S0123456")],
            },
        )
        assert answer.status_code == 201, answer.get_data(as_text=True)
        message = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "request.submitted").order_by(OutboxMessage.id.desc())
        ).first()
        assert message is not None
        assert "HX3 Bcc: victim@evil.test" in message.subject
        assert not set(message.subject) & {"\r", "\n"}
        parsed = sent_form(message)
        assert set(parsed.keys()) == MAIL_HEADERS
        assert "victim@evil.test" not in str(parsed["To"])
    finally:
        own.name = kept
        session.commit()


def test_an_address_a_mail_header_reads_as_other_recipients_is_refused_and_never_sent(world: World) -> None:
    """User e-mail: ``a,b@x`` would mail b@x too, ``<b>@x`` nobody, ``x:y@z`` a group. Such an
    address is refused when the user is made (422 on the page, nothing written), and a message
    to one already stored fails instead of going elsewhere."""
    admin = world.browsers["platform_admin"]
    before = count(world.session, User)
    for address in (
        "victim,attacker@evil.test",
        f"{world.group.payloads[0].replace(' ', '')}@evil.test",
        "javascript:alert(1)@evil.test",
        '"><svg/onload=alert(1)>@evil.test',
    ):
        answer = admin.post(
            "/admin/users/new",
            {"email": address, "role": "reviewer", "password": factories.PASSWORD, "manufacturer": "", "exporter": ""},
        )
        assert answer.status_code == 422, (address, answer.status_code)
        page = Page(answer.get_data(as_text=True))
        assert not live_markup(page), address
        assert page.shows(address), address
        with pytest.raises((ValueError, MessageError)):
            compose(recipient=address, subject="s", body="b", mail_from="noreply@issuer.test", written_at=None)
    assert count(world.session, User) == before


def plain_vehicle(vin: str) -> dict[str, str]:
    return {"vin": vin, "brand": "B", "model": "M", "registration_date": REGISTERED_ON, "destination": "KZ"}


def count(session: Session, model: type) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


# -- fields whose domain refuses markup ------------------------------------------------------------


def test_fields_that_refuse_markup_refuse_each_payload_and_write_nothing(world: World) -> None:
    """Codes, credit codes and outlet e-mail addresses cannot hold markup: each payload of the
    group is refused with 422 naming the field (the page shows it again as text), and nothing
    is written."""
    models = (Manufacturer, Exporter, Outlet, User, AuditEntry)
    before = {model: count(world.session, model) for model in models}
    admin = world.browsers["platform_admin"]
    outlet = {
        "code": "OK-1", "country": "KZ", "name": "N", "provider": "P", "address": "A", "valid_from": "2025-01-01",
    }  # fmt: skip
    maker = {"name": "N", "name_en": "E", "type": "vehicle_manufacturer", "wmis": "LRW", "letter_validity_days": "180"}
    for payload in world.group.payloads:
        for field_name in ("code", "email"):
            answer = world.api("aftersales", "POST", "/api/v1/outlets", json={**outlet, field_name: payload})
            error = json_of(answer, 422)["error"]
            assert field_name in {detail["field"] for detail in error["details"]}, (payload, error)
        pages = (
            ("/admin/manufacturers/new", {**maker, "code": payload, "uscc": factories.uscc(7001)}),
            ("/admin/manufacturers/new", {**maker, "code": "NEWM", "uscc": payload[:30]}),
            ("/admin/exporters/new", {"code": payload, "name": "N", "uscc": factories.uscc(7002)}),
            ("/admin/exporters/new", {"code": "NEWX", "name": "N", "uscc": payload[:30]}),
        )
        for path, form in pages:
            answer = admin.post(path, form)
            assert answer.status_code == 422, (path, payload, answer.status_code)
            assert not live_markup(Page(answer.get_data(as_text=True))), (path, payload)
    assert {model: count(world.session, model) for model in models} == before
