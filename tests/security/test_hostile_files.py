"""Hostile files: CSV and XLSX sent to every importer (the precheck upload, the registry and outlet
import pages, ``issuer vehicles import`` and ``issuer outlets import``), PNG and PEM files sent
to the seal image and key import forms, PDFs sent to verification (the page and
``POST /api/v1/verify``), hostile file names everywhere, and the spreadsheets the service writes.

What is proved, and how: each hostile file (built in code by ``tests.security.hostile_samples``:
bad encodings, NUL bytes, 10,000 columns, too many rows, formula cells, zip bombs, entity
expansion, encrypted and damaged workbooks, damaged and oversized PDFs) is sent through the real
page or command, as its real user (signed in through /login, with CSRF tokens). Each answer is a
clear 4xx (a page naming the problem, beside the form's field where there is one) or, for the
command line, exit code 2 with one line ``error: …``; never a 500 or a traceback. The database
is compared before and after: every table's row count after each file, every row's content at
the end of each test (a registry import page keeps the failed job's row, and only that).

Decisions:

* A formula in a CSV or XLSX is data: a cell is read as the text it holds (``=HYPERLINK(…)``
  is a VIN that fails VIN_FORMAT, a brand ``-2+3`` stays ``-2+3``), and an XLSX formula cell is
  read as the value the spreadsheet program stored beside it, never computed (no stored value,
  an empty cell). The spreadsheets the service writes (the precheck templates) hold no cell a
  spreadsheet program would run: none begins with ``=``, ``+``, ``-``, ``@``, a tab or a return.
* A PDF that cannot be a sealed letter (not a PDF, damaged, encrypted, unsigned) is answered
  ``authentic: false`` with the reasons, as the contract shapes the answer; only a request
  without a file (400), with an empty one (400) or over 10 MB (413) is refused outright. Every
  PDF is checked within bounds: nested 10,000 levels deep, 10,000 pages, a /Length of 10^14.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient, FlaskCliRunner
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage
from werkzeug.test import stream_encode_multipart

from issuer.models import ImportJob, Manufacturer, User
from issuer.services import accounts
from issuer.services.keys import generate_key
from tests import factories
from tests.conftest import TODAY
from tests.security import hostile_samples as samples
from tests.security.test_hostile_json import Problems, Unchanged
from tests.web.ui.conftest import Browser, csrf_token

REGISTRY_HEADER = ("vin", "brand", "model", "production_date")
OUTLET_HEADER = ("code", "country", "name", "provider", "address", "valid_from")
PRECHECK_HEADER = ("vin", "brand", "model", "registration_date", "destination")
REGISTERED_ON = (TODAY - dt.timedelta(days=30)).isoformat()
TEN_MB = 10 * 1024 * 1024


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture(autouse=True)
def imports_dir(app: Any, tmp_path: Path) -> Path:
    """Uploads wait in the test's own folder; registry jobs run inline (the test's connection)."""
    folder = tmp_path / "imports"
    app.config["ISSUER_IMPORTS_DIR"] = str(folder)
    app.config["ISSUER_INLINE_JOBS"] = True
    return folder


# -- the hostile tables --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A hostile file: its name, its bytes, and a fragment the refusal must show (in English)."""

    label: str
    name: str
    content: bytes
    says: str


def hostile_tables(header: tuple[str, ...], row: tuple[str, ...], *, limit_mb: int) -> list[Sample]:
    """Every hostile CSV and XLSX for an importer whose columns are ``header``; ``row`` is a
    valid row, so each file is wrong in one way only. ``limit_mb`` is the importer's cap on an
    unpacked workbook."""
    rows = [header, row]
    out = [Sample(label, "table.csv", content, "UTF-8") for label, content in samples.bad_csv_encodings(rows)]
    out[-1] = Sample(out[-1].label, "table.csv", out[-1].content, "NUL")
    out += [
        Sample("10,000 columns", "table.csv", samples.csv_many_columns(header, 10_000), "empty"),
        Sample("a cell of 11 MB", "table.csv", samples.csv_long_line(header, 11 * 1024 * 1024), ""),
        Sample("no header", "table.csv", samples.csv_text([row]).encode(), "header"),
        Sample("empty", "table.csv", b"", "empty"),
    ]
    bomb = (limit_mb + 10) * 1024 * 1024
    out += [
        Sample("zip bomb: shared strings", "table.xlsx", samples.xlsx_bomb_shared_strings(bomb, header), "MB"),
        Sample("zip bomb: sheet", "table.xlsx", samples.xlsx_bomb_sheet(bomb, header), "MB"),
        Sample(
            "zip bomb: shared strings over the whole-part cap",
            "table.xlsx",
            samples.xlsx_bomb_shared_strings(100 * 1024 * 1024, header),
            "MB",
        ),
        Sample("sizes that lie", "table.xlsx", samples.xlsx_lying_sizes(header, 20 * 1024 * 1024), "CRC"),
        Sample("billion laughs", "table.xlsx", samples.billion_laughs(header), "amplification"),
        Sample("external entity", "table.xlsx", samples.external_entity(header), "entity"),
    ]
    says = {
        "not a zip (text)": "not an XLSX",
        "zip magic, then garbage": "not a readable XLSX",
        "truncated zip": "not a readable XLSX",
        "zip without a workbook": "not a readable XLSX",
        "zip without the sheet": "XLSX",
        "sheet that is not XML": "XLSX",
        "encrypted zip members": "encrypted",
        "password-protected workbook (OLE2)": "password-protected",
    }
    out += [
        Sample(label, "table.xlsx", content, says[label]) for label, content in samples.xlsx_structural_damage(rows)
    ]
    return out


def formula_rows(header: tuple[str, ...], row: tuple[str, ...], column: str) -> list[tuple[str, ...]]:
    """``row`` once per formula, the formula in ``column`` (and a serial to keep keys unique)."""
    index = header.index(column)
    return [tuple(formula if i == index else cell for i, cell in enumerate(row)) for formula in samples.FORMULAS]


# -- the world ---------------------------------------------------------------------------------


def person(session: Session, role: str, **organisation: Any) -> User:
    user = factories.user(session, role, **organisation)
    return accounts.set_locale(session=session, user=user, locale="en")


@dataclass
class World:
    session: Session
    manufacturer: Manufacturer
    vins: list[str]
    exporter: Browser
    staff: Browser
    admin: Browser
    public: Browser


@pytest.fixture
def world(app: Any, session: Session, settings: Any) -> World:
    maker = factories.manufacturer(session, "ACME", wmis=("LGX",))
    generate_key(
        session=session, manufacturer_code=maker.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
    )
    vins = factories.random_vins("LGX", 3, seed=5)
    factories.register(session, maker, vins)
    factories.outlet(session, maker, code="KZ-ALMATY", country="KZ")
    exporter_org = factories.exporter(session, "EXP1")

    def browser(user: User | None) -> Browser:
        b = Browser(app.test_client())
        return b.sign_in(user) if user is not None else b

    return World(
        session=session,
        manufacturer=maker,
        vins=vins,
        exporter=browser(person(session, "exporter", exporter=exporter_org)),
        staff=browser(person(session, "aftersales", manufacturer=maker)),
        admin=browser(person(session, "manufacturer_admin", manufacturer=maker)),
        public=browser(None),
    )


def page_text(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def expect_page(
    problems: Problems,
    label: str,
    response: Any,
    statuses: tuple[int, ...],
    says: str,
    before: Unchanged,
) -> None:
    """A page (not a JSON error, not a traceback) of one of ``statuses`` showing ``says``, and
    every table as it was."""
    problems.inputs += 1
    text = page_text(response)
    ok = response.status_code in statuses and response.mimetype == "text/html" and "Traceback" not in text
    problems.check(label, ok, f"{response.status_code} {response.mimetype} {text[-400:]!r}")
    if ok and says:
        problems.check(f"{label}: names the problem", says.lower() in text.lower(), f"{says!r} not in {text[-600:]!r}")
    changed = before.changed()
    problems.check(f"{label} (database)", not changed, f"changed tables {changed}")


def multipart(fields: dict[str, str], files: dict[str, tuple[bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body, encoded as Werkzeug's test client would (names as given),
    but as bytes: the client's own temporary file for a large body is never closed."""
    data: dict[str, Any] = dict(fields)
    data.update({name: FileStorage(io.BytesIO(content), filename) for name, (content, filename) in files.items()})
    stream, _length, boundary = stream_encode_multipart(data, use_tempfile=False)
    return stream.getvalue(), f"multipart/form-data; boundary={boundary}"


def upload(browser: Browser, path: str, form_page: str, files: dict[str, tuple[bytes, str]], **fields: str) -> Any:
    token = csrf_token(browser.get(form_page).get_data(as_text=True))
    body, content_type = multipart({"csrf_token": token, **fields}, files)
    return browser.client.post(path, data=body, content_type=content_type)


# -- the precheck upload -------------------------------------------------------------------------


def test_the_precheck_upload_refuses_every_hostile_table_naming_the_problem(world: World) -> None:
    row = (world.vins[0], "Example", "E1", REGISTERED_ON, "KZ")
    problems = Problems()
    before = Unchanged(world.session)
    hostile = hostile_tables(PRECHECK_HEADER, row, limit_mb=50)
    too_many = samples.csv_text([PRECHECK_HEADER, *([row] * 10_001)]).encode()
    hostile.append(Sample("10,001 rows", "list.csv", too_many, "at most 10,000"))
    hostile.append(Sample("header only", "list.csv", samples.csv_text([PRECHECK_HEADER]).encode(), "no vehicles"))
    hostile.append(Sample("a .pdf", "list.pdf", b"%PDF-1.7", "not a CSV or XLSX"))
    for sample in hostile:
        if sample.label == "a cell of 11 MB":
            sample = Sample(sample.label, sample.name, sample.content[: 6 * 1024 * 1024], "larger than 5 MB")
        response = upload(
            world.exporter,
            "/precheck",
            "/precheck",
            {"upload": (sample.content, sample.name)},
            application_date=TODAY.isoformat(),
        )
        expect_page(problems, sample.label, response, (422,), sample.says, before)
    problems.assert_none()
    before.assert_whole()


def test_the_precheck_upload_reads_formulas_as_text_never_computing_them(world: World) -> None:
    row = (world.vins[0], "Example", "E1", REGISTERED_ON, "KZ")
    rows = formula_rows(PRECHECK_HEADER, row, "vin")
    before = Unchanged(world.session)
    for name, content in (
        ("formulas.csv", samples.csv_text([PRECHECK_HEADER, *rows]).encode()),
        ("formulas.xlsx", samples.xlsx([PRECHECK_HEADER, *rows])),
    ):
        response = upload(
            world.exporter, "/precheck", "/precheck", {"upload": (content, name)}, application_date=TODAY.isoformat()
        )
        assert response.status_code == 200, page_text(response)[-500:]
        text = html.unescape(response.get_data(as_text=True))
        for formula in samples.FORMULAS:  # as a VIN, shown upper-cased as every VIN is
            assert formula.strip().upper() in text.upper(), f"{formula!r} is not shown as typed in {name}"
    # An XLSX formula cell: the value the spreadsheet stored is read, the formula never run.
    cells = [samples.Formula('=HYPERLINK("http://evil.test","x")', cached=world.vins[0]), "Example", "E1"]
    content = samples.xlsx([PRECHECK_HEADER, (*cells, REGISTERED_ON, "KZ")])
    response = upload(
        world.exporter,
        "/precheck",
        "/precheck",
        {"upload": (content, "cached.xlsx")},
        application_date=TODAY.isoformat(),
    )
    assert response.status_code == 200, page_text(response)[-500:]
    assert world.vins[0] in response.get_data(as_text=True)
    assert "evil.test" not in response.get_data(as_text=True)
    uncached = samples.xlsx([PRECHECK_HEADER, (samples.Formula("=1+1"), "Example", "E1", REGISTERED_ON, "KZ")])
    response = upload(
        world.exporter, "/precheck", "/precheck", {"upload": (uncached, "uncached.xlsx")}, application_date="2026-09-15"
    )
    assert response.status_code == 422
    assert "vin is empty" in page_text(response)
    before.assert_whole()


# -- the outlet import page and the registry import page ------------------------------------------


def test_the_outlet_import_page_refuses_every_hostile_table_naming_the_problem(world: World) -> None:
    row = ("UZ-1", "UZ", "Tashkent Service", "Silk Road LLC", "1 Amir Temur St", "2026-01-01")
    problems = Problems()
    before = Unchanged(world.session)
    for sample in hostile_tables(OUTLET_HEADER, row, limit_mb=50):
        if sample.label == "a cell of 11 MB":
            sample = Sample(sample.label, sample.name, sample.content[: 9 * 1024 * 1024], "malformed CSV")
        response = upload(
            world.staff, "/registry/outlets/import", "/registry/outlets/import", {"file": (sample.content, sample.name)}
        )
        expect_page(problems, sample.label, response, (422,), sample.says, before)
    problems.assert_none()
    before.assert_whole()


def _job(session: Session) -> ImportJob | None:
    session.expire_all()
    return session.scalars(select(ImportJob).order_by(ImportJob.id.desc())).first()


def test_the_registry_import_page_refuses_every_hostile_table_and_imports_nothing(
    world: World, imports_dir: Path
) -> None:
    """Refused beside the field before a job is queued (a zip bomb, a wrong suffix), or queued
    and failed with the reason on the job's page; the registry is untouched either way."""
    row = (factories.make_vin("LGX", 900), "Example", "E1", "2025-01-01")
    problems = Problems()
    before = Unchanged(world.session, ignore=("import_jobs",))
    hostile = hostile_tables(REGISTRY_HEADER, row, limit_mb=1024)
    hostile.append(Sample("a .txt", "registry.txt", b"vin\n", "csv or .xlsx"))
    for sample in hostile:
        if sample.label == "a cell of 11 MB":
            sample = Sample(sample.label, sample.name, sample.content[: 9 * 1024 * 1024], "malformed CSV")
        previous = _job(world.session)
        response = upload(
            world.staff, "/registry/vehicles", "/registry/vehicles", {"file": (sample.content, sample.name)}
        )
        if response.status_code == 303:
            problems.inputs += 1
            job = _job(world.session)
            assert job is not None
            assert previous is None or job.id != previous.id
            shown = page_text(world.staff.get(response.headers["Location"]))
            problems.check(
                sample.label, job.state == "failed" and "unexpectedly" not in (job.error or ""), (job.state, job.error)
            )
            problems.check(f"{sample.label}: names the problem", sample.says.lower() in shown.lower(), shown[-500:])
            problems.check(f"{sample.label} (database)", not before.changed(), before.changed())
        else:
            expect_page(problems, sample.label, response, (422,), sample.says, before)
        problems.check(
            f"{sample.label}: upload deleted", not list(imports_dir.rglob("*.*")), list(imports_dir.rglob("*"))
        )
    problems.assert_none()
    before.assert_whole()


def _stored_registry(session: Session, manufacturer: Manufacturer) -> dict[str, tuple[str, str]]:
    from issuer.models import RegisteredVehicle

    session.expire_all()
    rows = session.execute(
        select(RegisteredVehicle.vin, RegisteredVehicle.brand, RegisteredVehicle.model).where(
            RegisteredVehicle.manufacturer_id == manufacturer.id
        )
    )
    return {vin: (brand, model) for vin, brand, model in rows}


def test_formulas_in_an_imported_registry_are_stored_as_the_text_typed(world: World) -> None:
    new = [factories.make_vin("LGX", 800 + n) for n in range(len(samples.FORMULAS))]
    rows = [
        (vin, formula.strip(), formula.strip(), "2025-01-01")
        for vin, formula in zip(new, samples.FORMULAS, strict=True)
    ]
    response = upload(
        world.staff,
        "/registry/vehicles",
        "/registry/vehicles",
        {"file": (samples.csv_text([REGISTRY_HEADER, *rows]).encode(), "formulas.csv")},
    )
    assert response.status_code == 303
    stored = _stored_registry(world.session, world.manufacturer)
    for vin, brand, _model, _date in rows:
        assert stored[vin] == (brand, brand), "a formula cell is stored as the text it holds"


# -- the command line ----------------------------------------------------------------------------


def test_the_import_commands_exit_2_with_one_line_and_write_nothing_for_every_hostile_file(
    world: World, cli: FlaskCliRunner, tmp_path: Path
) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    commands = (
        ("vehicles", REGISTRY_HEADER, (factories.make_vin("LGX", 901), "Example", "E1", "2025-01-01"), 1024),
        ("outlets", OUTLET_HEADER, ("UZ-1", "UZ", "Tashkent", "Silk Road LLC", "1 Amir Temur St", "2026-01-01"), 50),
    )
    for command, header, row, limit in commands:
        for n, sample in enumerate(hostile_tables(header, row, limit_mb=limit)):
            folder = tmp_path / f"{command}-{n}"
            folder.mkdir()
            path = folder / sample.name
            path.write_bytes(sample.content)
            result = cli.invoke(args=[command, "import", "--manufacturer", "ACME", str(path)])
            problems.inputs += 1
            # One line naming the problem; a file refused for its rows then lists them, one a line.
            lines = result.stderr.splitlines()
            lines = lines[:1] + [line for line in lines[1:] if not line.startswith("line ")]
            problems.check(
                f"{command} import {sample.label}",
                result.exit_code == 2
                and len(lines) == 1
                and lines[0].startswith("error: ")
                and "Traceback" not in result.output,
                (result.exit_code, result.output[-400:], repr(result.exception)),
            )
            problems.check(f"{command} import {sample.label} (database)", not before.changed(), before.changed())
        for name in samples.HOSTILE_NAMES:
            if "\x00" in name or "/" in name or len(name.encode()) > 255:
                continue  # no file system holds such a name
            folder = tmp_path / f"{command}-names-{samples.HOSTILE_NAMES.index(name)}"
            folder.mkdir()
            path = folder / name
            path.write_bytes("\ufeff".encode() + b"vin\n\xff\n")
            result = cli.invoke(args=[command, "import", "--manufacturer", "ACME", str(path)])
            problems.inputs += 1
            lines = result.stderr.splitlines()
            problems.check(
                f"{command} import of a file named {name[:40]!r}",
                result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "),
                (result.exit_code, result.output[-300:]),
            )
    problems.assert_none()
    before.assert_whole()


# -- hostile file names --------------------------------------------------------------------------


def test_hostile_file_names_are_never_a_path_a_header_or_a_stored_nul(
    world: World, imports_dir: Path, tmp_path: Path
) -> None:
    """Every upload form takes a file of any name: the name is shown (escaped) or dropped, never
    used as a path outside the upload folder, never stored with a NUL or a line break, and never
    put in a header."""
    problems = Problems()
    before = Unchanged(world.session, ignore=("import_jobs",))
    good_registry = samples.csv_text([REGISTRY_HEADER, (factories.make_vin("LGX", 950), "Example", "E1", "")]).encode()
    for name in samples.HOSTILE_NAMES:
        for browser, path, field, content, statuses in (
            (world.exporter, "/precheck", "upload", b"vin,brand\n", (400, 422)),
            (world.staff, "/registry/outlets/import", "file", b"code\n", (400, 422)),
            (world.staff, "/registry/vehicles", "file", b"\xff\xfe", (303, 400, 422)),
        ):
            extra = {"application_date": TODAY.isoformat()} if path == "/precheck" else {}
            response = upload(browser, path, path, {field: (content, name)}, **extra)
            problems.inputs += 1
            problems.check(
                f"{path} {name[:30]!r}",
                response.status_code in statuses,
                (response.status_code, page_text(response)[-300:]),
            )
            problems.check(
                f"{path} {name[:30]!r}: headers",
                all("\n" not in v and "\r" not in v and "passwd" not in v for _k, v in response.headers.items()),
                dict(response.headers),
            )
            problems.check(f"{path} {name[:30]!r} (database)", not before.changed(), before.changed())
        # A valid registry under a hostile name: imported, its name kept readable and harmless.
        response = upload(world.staff, "/registry/vehicles", "/registry/vehicles", {"file": (good_registry, name)})
        job = _job(world.session)
        if response.status_code == 303 and job is not None:
            problems.check(
                f"stored name of {name[:30]!r}",
                "\x00" not in job.filename
                and "\n" not in job.filename
                and "/" not in job.filename
                and "\\" not in job.filename,
                repr(job.filename),
            )
            problems.check(
                f"stored path of {name[:30]!r}", Path(job.stored_path).parent.parent == imports_dir, job.stored_path
            )
        before = Unchanged(world.session, ignore=("import_jobs",))
    assert not list(imports_dir.rglob("*.*")), "every upload is deleted"
    assert not (tmp_path.parent / "etc").exists()
    problems.assert_none()


def test_downloads_name_their_file_themselves_and_spreadsheets_hold_no_formula(world: World) -> None:
    for fmt in ("csv", "xlsx"):
        response = world.exporter.get(f"/precheck/template.{fmt}")
        assert response.status_code == 200
        disposition = response.headers["Content-Disposition"]
        assert re.fullmatch(r'attachment; filename="?[A-Za-z0-9._-]+"?', disposition), disposition
        if fmt == "csv":
            cells = [cell for row in csv.reader(io.StringIO(response.data.decode("utf-8-sig"))) for cell in row]
        else:
            workbook = load_workbook(io.BytesIO(response.data))
            cells = [str(c.value) for sheet in workbook.worksheets for r in sheet.iter_rows() for c in r if c.value]
            assert not [c for sheet in workbook.worksheets for r in sheet.iter_rows() for c in r if c.data_type == "f"]
        assert cells
        dangerous = [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert not dangerous, f"cells a spreadsheet would run: {dangerous}"


# -- the seal image and key import forms ---------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header chunk claims ``width`` x ``height`` pixels."""
    real = _png(8, 8)
    ihdr = b"IHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + real[24:29]
    return real[:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + real[33:]


def test_the_seal_image_form_refuses_every_hostile_png_and_keeps_the_old_image(world: World) -> None:
    code = world.manufacturer.code
    form_page = f"/admin/keys/{code}"
    good = _png(64, 64)
    assert upload(world.admin, f"{form_page}/seal-image", form_page, {"image": (good, "seal.png")}).status_code == 302
    problems = Problems()
    before = Unchanged(world.session)
    png = _png(32, 32)
    for label, content, statuses, says in (
        ("empty", b"", (422,), "PNG"),
        ("not a PNG", b"GIF89a" + b"\x00" * 64, (422,), "must be a PNG"),
        ("PNG signature, then garbage", png[:8] + b"\x00garbage" * 64, (422,), "not a readable PNG"),
        ("truncated PNG", png[: len(png) // 2], (422,), "not a readable PNG"),
        ("a broken checksum", png[:29] + b"\x00\x00\x00\x00" + png[33:], (422,), "not a readable PNG"),
        ("10,000 x 10,000 pixels (a decompression bomb)", _png(10_000, 10_000), (422,), "pixels"),
        ("a header claiming 100,000 x 100,000", _png_claiming(100_000, 100_000), (422,), "pixels"),
        ("over 2 MB", png + b"\x00" * (3 * 1024 * 1024), (422,), "larger than 2 MB"),
        ("over 10 MB", png + b"\x00" * TEN_MB, (413,), ""),
        ("a PDF named seal.png", b"%PDF-1.7\n", (422,), "must be a PNG"),
    ):
        response = upload(world.admin, f"{form_page}/seal-image", form_page, {"image": (content, "seal.png")})
        expect_page(problems, label, response, statuses, says, before)
    problems.assert_none()
    before.assert_whole()


def _pem_files(world: World) -> tuple[bytes, bytes]:
    return factories.ca_issued(world.manufacturer.uscc, content_commitment=True)


def test_the_key_import_form_refuses_every_hostile_key_or_certificate_and_writes_no_key(
    world: World, settings: Any
) -> None:
    code = world.manufacturer.code
    form_page = f"/admin/keys/{code}"
    key, chain = _pem_files(world)
    other_key, _other_chain = factories.ca_issued(world.manufacturer.uscc, content_commitment=True)
    problems = Problems()
    before = Unchanged(world.session)
    keys_before = sorted(p.name for p in settings.keys_dir.rglob("*"))
    certificate_only = chain.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    for label, key_file, certificate_file, password, says in (
        ("empty key", b"", chain, "", "private key"),
        ("garbage key", b"not a key", chain, "", "private key"),
        ("key with a NUL", key.replace(b"\n", b"\x00", 3), chain, "", "private key"),
        ("certificate as the key", certificate_only, chain, "", "private key"),
        ("key as the certificate", key, key, "", "certificate"),
        (
            "garbage certificate",
            key,
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "",
            "certificate",
        ),
        ("another key's certificate", other_key, chain, "", "belongs to the private key"),
        ("a password for a key that has none", key, chain, "secret", "private key"),
        (
            "a key of 8 MB",
            b"-----BEGIN PRIVATE KEY-----\n" + b"QUFB\n" * 1_600_000 + b"-----END PRIVATE KEY-----\n",
            chain,
            "",
            "private key",
        ),
        ("a chain of 2,000 copies", key, chain * 2_000, "", "certificates"),
        ("files over 10 MB", key, chain + b"\n" * TEN_MB, "", ""),
    ):
        response = upload(
            world.admin,
            f"{form_page}/import",
            form_page,
            {"key": (key_file, "key.pem"), "certificate": (certificate_file, "chain.pem")},
            key_password=password,
        )
        statuses = (413,) if "10 MB" in label else (422,)
        expect_page(problems, label, response, statuses, says, before)
        problems.check(f"{label}: key files", sorted(p.name for p in settings.keys_dir.rglob("*")) == keys_before)
    problems.assert_none()
    before.assert_whole()


# -- verification --------------------------------------------------------------------------------


@pytest.fixture
def sealed_letter(world: World, client: FlaskClient, session: Session) -> bytes:
    """A real sealed letter of ``world``, filed and approved through the API."""
    from tests.web.conftest import caller

    exporter = caller(session, "exporter", exporter=factories.exporter(session, "EXP9"))
    aftersales = caller(session, "aftersales", manufacturer=world.manufacturer)
    body = {
        "manufacturer": world.manufacturer.code,
        "application_date": (TODAY + dt.timedelta(days=10)).isoformat(),
        "vehicles": [
            {
                "vin": world.vins[1],
                "brand": "Example",
                "model": "E1",
                "registration_date": REGISTERED_ON,
                "destination": "KZ",
            }
        ],
    }
    filed = client.post("/api/v1/requests", json=body, headers=exporter.headers)
    assert filed.status_code == 201, filed.get_data(as_text=True)
    decided = client.post(
        f"/api/v1/requests/{filed.get_json()['id']}/decision",
        json={"approve": "all_eligible"},
        headers=aftersales.headers,
    )
    assert decided.status_code == 200, decided.get_data(as_text=True)
    number = decided.get_json()["letter_number"]
    pdf = client.get(f"/api/v1/letters/{number}/pdf", headers=exporter.headers)
    assert pdf.status_code == 200
    # The download names itself by the letter's number, never by anything a user typed.
    assert pdf.headers["Content-Disposition"] == f'attachment; filename="{number}.pdf"'
    assert re.fullmatch(r"[A-Z0-9-]+", number)
    return pdf.data


def _verify(client: FlaskClient, path: str, content: bytes) -> Any:
    body, content_type = multipart({}, {"file": (content, "letter.pdf")})
    return client.post(path, data=body, content_type=content_type)


def test_verification_answers_every_damaged_pdf_not_authentic_with_reasons_within_bounds(
    world: World, client: FlaskClient, sealed_letter: bytes
) -> None:
    genuine = _verify(client, "/api/v1/verify", sealed_letter)
    assert genuine.status_code == 200
    assert genuine.get_json()["authentic"] is True, genuine.get_json()
    problems = Problems()
    before = Unchanged(world.session)
    for label, content in samples.hostile_pdfs(sealed_letter):
        response = _verify(client, "/api/v1/verify", content)
        problems.inputs += 1
        body = response.get_json(silent=True) or {}
        problems.check(
            f"API {label}",
            response.status_code == 200 and body.get("authentic") is False and bool(body.get("messages")),
            (response.status_code, str(body)[:400]),
        )
        page = _verify(world.public.client, "/verify", content)
        problems.check(
            f"page {label}",
            page.status_code == 200 and "not authentic" in page_text(page).lower(),
            (page.status_code, page_text(page)[-400:]),
        )
        problems.check(f"{label} (database)", not before.changed(), before.changed())
    problems.assert_none()
    before.assert_whole()


def test_verification_refuses_a_missing_empty_or_oversized_upload(world: World, client: FlaskClient) -> None:
    problems = Problems()
    before = Unchanged(world.session)
    oversized = b"%PDF-1.7\n" + b"0" * TEN_MB
    for label, files, status in (
        ("no file", {}, 400),
        ("another field", {"pdf": (b"%PDF-1.7", "letter.pdf")}, 400),
        ("empty file", {"file": (b"", "letter.pdf")}, 400),
        ("over 10 MB", {"file": (oversized, "letter.pdf")}, 413),
        ("a NUL in the name", {"file": (b"%PDF-1.7", "a\x00.pdf")}, 200),
    ):
        body, content_type = multipart({}, files)
        response = client.post("/api/v1/verify", data=body, content_type=content_type)
        problems.inputs += 1
        if status == 200:
            problems.check(
                label, response.status_code == 200 and response.get_json()["authentic"] is False, response.status_code
            )
        else:
            answer = response.get_json(silent=True) or {}
            problems.check(label, response.status_code == status and "error" in answer, (response.status_code, answer))
        page = world.public.client.post("/verify", data=body, content_type=content_type)
        problems.check(
            f"page {label}",
            page.status_code == status and page.mimetype == "text/html",
            (page.status_code, page_text(page)[-300:]),
        )
        problems.check(f"{label} (database)", not before.changed(), before.changed())
    problems.assert_none()
    before.assert_whole()
