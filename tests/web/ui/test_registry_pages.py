"""The after-sales registry pages (/registry): the outlet registry, the production registry import
with its progress page, and the negative list of exporters — as a user clicks through them."""

from __future__ import annotations

import csv
import datetime as dt
import html as html_lib
import io
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from issuer import create_app
from issuer.config import Settings
from issuer.db import Database, make_engine
from issuer.domain.eligibility import ReasonCode, VehicleDeclaration
from issuer.migrate import upgrade
from issuer.models import ImportJob, ImportState, Manufacturer, Outlet, RegisteredVehicle, User
from issuer.services import registry as registry_service
from issuer.services.requests import precheck_for_manufacturer
from tests import factories
from tests.conftest import TEST_DATABASE_URL, TODAY
from tests.web.ui.conftest import Browser

OUTLETS_HEADER = "code,country,name,provider,address,city,phone,email,brands,valid_from,valid_to"
REGISTRY_HEADER = ("vin", "brand", "model", "production_date")


# -- set-up ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def imports_dir(app: Any, tmp_path: Path) -> Path:
    """Uploads go to the test's own folder, and jobs run inline (the test's one connection)."""
    folder = tmp_path / "imports"
    app.config["ISSUER_IMPORTS_DIR"] = str(folder)
    app.config["ISSUER_INLINE_JOBS"] = True
    return folder


@pytest.fixture
def acme(session: Session) -> Manufacturer:
    return factories.manufacturer(session, "ACME", wmis=("LGX",))


@pytest.fixture
def rival(session: Session) -> Manufacturer:
    return factories.manufacturer(session, "RIVAL", wmis=("LRW",))


def person(session: Session, role: str, **organisation: Any) -> User:
    """A user of ``role`` who reads the pages in English (the tests name English text)."""
    user = factories.user(session, role, **organisation)
    user.locale = "en"
    session.commit()
    return user


@pytest.fixture
def aftersales(session: Session, acme: Manufacturer) -> User:
    return person(session, "aftersales", manufacturer=acme)


@pytest.fixture
def staff(browser: Browser, aftersales: User) -> Browser:
    return browser.sign_in(aftersales)


def page(response: Any) -> str:
    return html_lib.unescape(response.get_data(as_text=True))


def error_beside(html: str, field_id: str) -> str:
    """The error text shown under the field ``field_id`` (the form macro's ``<id>-error``)."""
    match = re.search(rf'<p class="error" id="{re.escape(field_id)}-error">(.*?)</p>', html, re.S)
    assert match, f"no error beside the field {field_id}"
    return " ".join(match.group(1).split())


def input_value(html: str, field_id: str) -> str:
    tag = re.search(rf'<input[^>]*\bid="{re.escape(field_id)}"[^>]*>', html)
    assert tag, f"no input {field_id}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return value.group(1) if value else ""


def outlet_values(**overrides: str) -> dict[str, str]:
    values = {
        "code": "KZ-ASTANA",
        "country": "KZ",
        "name": "Astana Service Centre",
        "provider": "Steppe Aftercare LLP",
        "address": "12 Kabanbay Batyr Ave",
        "city": "Astana",
        "phone": "+7 717 000 0000",
        "email": "astana@steppe.test",
        "brands": "Example; Other",
        "valid_from": "2026-01-01",
        "valid_to": "",
        "active": "y",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def stored_outlet(session: Session, manufacturer: Manufacturer, code: str) -> Outlet | None:
    session.expire_all()
    return session.scalar(select(Outlet).where(Outlet.manufacturer_id == manufacturer.id, Outlet.code == code))


def registered(session: Session, manufacturer: Manufacturer) -> int:
    session.expire_all()
    return (
        session.scalar(
            select(func.count())
            .select_from(RegisteredVehicle)
            .where(RegisteredVehicle.manufacturer_id == manufacturer.id)
        )
        or 0
    )


def upload(content: bytes, name: str) -> tuple[io.BytesIO, str]:
    return io.BytesIO(content), name


def csv_bytes(rows: list[tuple[object, ...]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def xlsx_bytes(rows: list[tuple[object, ...]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# -- the outlet registry -----------------------------------------------------------------------


def test_the_list_shows_the_outlets_and_filters_them_by_country_and_status(
    session: Session, acme: Manufacturer, staff: Browser
) -> None:
    factories.outlet(session, acme, code="KZ-ALMATY", country="KZ", brands="Example")
    factories.outlet(session, acme, code="TH-BANGKOK", country="TH")
    closed = factories.outlet(session, acme, code="KZ-CLOSED", country="KZ")
    closed.active = False
    session.commit()

    everything = page(staff.get("/registry/outlets"))
    for code in ("KZ-ALMATY", "TH-BANGKOK", "KZ-CLOSED"):
        assert code in everything
    assert "Kazakhstan" in everything  # the country's name in the page's language
    assert "Thailand" in everything
    # The country filter offers the countries present.
    assert '<option value="KZ">Kazakhstan (KZ)</option>' in everything
    assert '<option value="TH">Thailand (TH)</option>' in everything

    kazakh = page(staff.get("/registry/outlets?country=kz"))
    assert "KZ-ALMATY" in kazakh
    assert "KZ-CLOSED" in kazakh
    assert "TH-BANGKOK" not in kazakh

    active_kazakh = page(staff.get("/registry/outlets?country=KZ&active=active"))
    assert "KZ-ALMATY" in active_kazakh
    assert "KZ-CLOSED" not in active_kazakh
    inactive = page(staff.get("/registry/outlets?active=inactive"))
    assert "KZ-CLOSED" in inactive
    assert "KZ-ALMATY" not in inactive
    assert 'badge inactive">Inactive' in inactive

    # Any ISO code may be asked for, even one without outlets; an unknown code is refused beside the filter.
    none_there = staff.get("/registry/outlets?country=UZ")
    assert none_there.status_code == 200
    assert "No outlet matches these filters." in page(none_there)
    bad = staff.get("/registry/outlets?country=ZZ")
    assert bad.status_code == 422
    assert "ZZ is not an ISO 3166-1 country code" in error_beside(page(bad), "country")


def test_the_list_names_countries_in_chinese_on_a_chinese_page(
    session: Session, acme: Manufacturer, aftersales: User, staff: Browser
) -> None:
    factories.outlet(session, acme, code="KZ-ALMATY", country="KZ")
    aftersales.locale = "zh"
    session.commit()
    chinese = page(staff.get("/registry/outlets"))
    assert "哈萨克斯坦" in chinese
    assert "Kazakhstan" not in chinese


def test_adding_an_outlet_with_bad_input_shows_each_error_beside_its_field_and_keeps_what_was_typed(
    session: Session, acme: Manufacturer, staff: Browser
) -> None:
    answer = staff.post("/registry/outlets/new", outlet_values(country="XX", email="not-an-address"))
    assert answer.status_code == 422
    html = page(answer)
    assert "is not an ISO 3166-1 alpha-2 country code" in error_beside(html, "country")
    assert "is not an e-mail address" in error_beside(html, "email")
    assert input_value(html, "country") == "XX"
    assert input_value(html, "email") == "not-an-address"
    assert input_value(html, "name") == "Astana Service Centre"
    assert input_value(html, "code") == "KZ-ASTANA"
    assert "12 Kabanbay Batyr Ave" in html  # the address textarea keeps its text
    assert stored_outlet(session, acme, "KZ-ASTANA") is None

    backwards = staff.post(
        "/registry/outlets/new",
        outlet_values(valid_from="2026-06-01", valid_to="2026-05-31"),
        form_page="/registry/outlets/new",
    )
    assert backwards.status_code == 422
    html = page(backwards)
    assert "before valid_from" in error_beside(html, "valid_to")
    assert input_value(html, "valid_to") == "2026-05-31"
    assert input_value(html, "valid_from") == "2026-06-01"
    assert stored_outlet(session, acme, "KZ-ASTANA") is None

    missing = staff.post("/registry/outlets/new", outlet_values(name="", valid_from="1 June"))
    assert missing.status_code == 422
    html = page(missing)
    assert "Enter the outlet's name." in error_beside(html, "name")
    assert error_beside(html, "valid_from")
    assert input_value(html, "valid_from") == "1 June"


def test_adding_an_outlet_stores_it_with_its_first_version(
    session: Session, acme: Manufacturer, aftersales: User, staff: Browser
) -> None:
    form = staff.get("/registry/outlets/new")
    assert 'name="csrf_token"' in form.get_data(as_text=True)
    answer = staff.post("/registry/outlets/new", outlet_values(code="kz-astana"))
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/registry/outlets/KZ-ASTANA")
    outlet = stored_outlet(session, acme, "KZ-ASTANA")
    assert outlet is not None
    assert (outlet.country, outlet.city, outlet.brands, outlet.valid_to) == ("KZ", "Astana", "Example;Other", None)
    assert [v.recorded_by for v in outlet.versions] == [aftersales.email]

    edit = page(staff.get(answer.headers["Location"]))
    assert "Outlet KZ-ASTANA" in edit
    assert "first version" in edit
    listed = page(staff.get("/registry/outlets"))
    assert "KZ-ASTANA" in listed
    assert "Example; Other" in listed

    again = staff.post("/registry/outlets/new", outlet_values())
    assert again.status_code == 422
    assert "already exists" in error_beside(page(again), "code")


def test_editing_records_a_new_version_shown_in_the_history(
    session: Session, acme: Manufacturer, aftersales: User, staff: Browser
) -> None:
    factories.outlet(session, acme, code="KZ-ALMATY", country="KZ")
    path = "/registry/outlets/KZ-ALMATY"
    form = page(staff.get(path))
    assert input_value(form, "country") == "KZ"
    assert input_value(form, "valid_from") == "2025-01-01"

    values = outlet_values(city="Shymkent", email="", brands="", address="1 New Road", valid_from="2025-01-01")
    values.pop("code")
    answer = staff.post(path, values)
    assert answer.status_code == 303
    outlet = stored_outlet(session, acme, "KZ-ALMATY")
    assert outlet is not None
    assert outlet.city == "Shymkent"
    assert outlet.version == 2
    assert [v.change for v in outlet.versions] == ["created", "updated"]
    assert outlet.versions[-1].recorded_by == aftersales.email

    history = page(staff.get(path))
    assert "City: Shymkent" in history
    assert "Address: 1 New Road" in history

    bad = staff.post(path, {**values, "valid_to": "2024-12-31"})
    assert bad.status_code == 422
    assert "before valid_from" in error_beside(page(bad), "valid_to")
    assert input_value(page(bad), "valid_to") == "2024-12-31"
    outlet = stored_outlet(session, acme, "KZ-ALMATY")
    assert outlet is not None
    assert (outlet.version, outlet.valid_to) == (2, None)


def test_deactivating_and_reactivating_an_outlet_records_versions(
    session: Session, acme: Manufacturer, staff: Browser
) -> None:
    factories.outlet(session, acme, code="KZ-ALMATY", country="KZ")
    edit = page(staff.get("/registry/outlets/KZ-ALMATY"))
    assert "data-confirm=" in edit  # the browser asks before deactivating
    answer = staff.post("/registry/outlets/KZ-ALMATY/active", {"active": "0"}, form_page="/registry/outlets/KZ-ALMATY")
    assert answer.status_code == 303
    outlet = stored_outlet(session, acme, "KZ-ALMATY")
    assert outlet is not None
    assert (outlet.active, outlet.version) == (False, 2)
    after = page(staff.get("/registry/outlets/KZ-ALMATY"))
    assert "Outlet KZ-ALMATY is deactivated" in after
    assert "Active: no" in after
    assert 'badge inactive">Inactive' in page(staff.get("/registry/outlets"))

    staff.post("/registry/outlets/KZ-ALMATY/active", {"active": "1"}, form_page="/registry/outlets/KZ-ALMATY")
    outlet = stored_outlet(session, acme, "KZ-ALMATY")
    assert outlet is not None
    assert (outlet.active, outlet.version) == (True, 3)

    # Without the CSRF token nothing changes.
    refused = staff.client.post("/registry/outlets/KZ-ALMATY/active", data={"active": "0"})
    assert refused.status_code in (303, 400)
    outlet = stored_outlet(session, acme, "KZ-ALMATY")
    assert outlet is not None
    assert outlet.active is True


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_importing_outlets_shows_the_counts(session: Session, acme: Manufacturer, staff: Browser, suffix: str) -> None:
    factories.outlet(session, acme, code="KZ-ALMATY", country="KZ")
    rows = [
        tuple(OUTLETS_HEADER.split(",")),
        ("TH-BANGKOK", "TH", "Bangkok Centre", "Siam Care Co.", "1 Sukhumvit", "Bangkok", "", "", "", "2026-01-01", ""),
        (
            "UZ-TASHKENT",
            "UZ",
            "Tashkent Centre",
            "Silk Care",
            "2 Amir Temur",
            "Tashkent",
            "",
            "",
            "Example",
            "2026-01-01",
            "",
        ),
    ]
    content = csv_bytes(rows) if suffix == "csv" else xlsx_bytes(rows)
    answer = staff.post(
        "/registry/outlets/import", {"file": upload(content, f"outlets.{suffix}")}, content_type="multipart/form-data"
    )
    assert answer.status_code == 200, page(answer)
    html = page(answer)
    assert "The file was imported" in html
    assert re.search(r'<strong class="num">2</strong> added', html)
    assert re.search(r'<strong class="num">0</strong> updated', html)
    assert stored_outlet(session, acme, "UZ-TASHKENT") is not None

    changed = [rows[0], rows[1], (*rows[2][:5], "Samarkand", *rows[2][6:])]
    again = staff.post(
        "/registry/outlets/import",
        {"file": upload(csv_bytes(changed), "outlets.csv")},
        content_type="multipart/form-data",
    )
    html = page(again)
    assert re.search(r'<strong class="num">0</strong> added', html)
    assert re.search(r'<strong class="num">1</strong> updated', html)
    assert re.search(r'<strong class="num">1</strong> unchanged', html)
    outlet = stored_outlet(session, acme, "UZ-TASHKENT")
    assert outlet is not None
    assert (outlet.city, outlet.version) == ("Samarkand", 2)
    assert not any(Path(staff.client.application.config["ISSUER_IMPORTS_DIR"]).rglob("*.*"))  # uploads deleted


def test_a_bad_outlet_file_lists_every_rejected_line_and_writes_nothing(
    session: Session, acme: Manufacturer, staff: Browser
) -> None:
    rows = [
        tuple(OUTLETS_HEADER.split(",")),
        ("TH-BANGKOK", "TH", "Bangkok Centre", "Siam Care Co.", "1 Sukhumvit", "", "", "", "", "2026-01-01", ""),
        ("XX-NOWHERE", "XX", "Nowhere", "Nobody", "No street", "", "", "", "", "2026-01-01", ""),
        ("TH-LATE", "TH", "Late", "Late Co.", "3 Road", "", "", "bad-mail", "", "2026-05-01", "2026-04-01"),
    ]
    answer = staff.post(
        "/registry/outlets/import", {"file": upload(csv_bytes(rows), "outlets.csv")}, content_type="multipart/form-data"
    )
    assert answer.status_code == 422
    html = page(answer)
    assert "Nothing was imported" in html
    table = html[html.index('class="rejected-lines"') :]
    assert re.search(r'<td class="num">3</td><td>[^<]*country', table)
    assert re.search(r'<td class="num">4</td><td>[^<]*e-mail', table)
    assert '<td class="num">2</td>' not in table
    assert stored_outlet(session, acme, "TH-BANGKOK") is None

    wrong_kind = staff.post(
        "/registry/outlets/import", {"file": upload(b"hello", "outlets.txt")}, content_type="multipart/form-data"
    )
    assert wrong_kind.status_code == 422
    assert "Choose a .csv or .xlsx file." in error_beside(page(wrong_kind), "file")
    no_header = staff.post(
        "/registry/outlets/import", {"file": upload(b"a,b\n1,2\n", "outlets.csv")}, content_type="multipart/form-data"
    )
    assert no_header.status_code == 422
    assert "missing column" in page(no_header)


def test_another_manufacturers_outlets_cannot_be_seen_or_changed(
    session: Session, acme: Manufacturer, rival: Manufacturer, staff: Browser
) -> None:
    factories.outlet(session, rival, code="RIVAL-KZ", country="KZ")
    factories.outlet(session, acme, code="ACME-KZ", country="KZ")
    listed = page(staff.get("/registry/outlets?country=KZ"))
    assert "ACME-KZ" in listed
    assert "RIVAL-KZ" not in listed
    assert staff.get("/registry/outlets/RIVAL-KZ").status_code == 404
    changed = staff.post("/registry/outlets/RIVAL-KZ", outlet_values(), form_page="/registry/outlets/new")
    assert changed.status_code == 404
    toggled = staff.post("/registry/outlets/RIVAL-KZ/active", {"active": "0"}, form_page="/registry/outlets/new")
    assert toggled.status_code == 404
    outlet = stored_outlet(session, rival, "RIVAL-KZ")
    assert outlet is not None
    assert (outlet.active, outlet.version) == (True, 1)


def test_exporters_and_reviewers_may_not_open_the_registry_pages(
    session: Session, acme: Manufacturer, make_browser: Any
) -> None:
    exporter = person(session, "exporter", exporter=factories.exporter(session))
    reviewer = person(session, "reviewer")
    factories.outlet(session, acme, code="KZ-ALMATY", country="KZ")
    for user in (exporter, reviewer):
        visitor = make_browser(user)
        for path in (
            "/registry/outlets",
            "/registry/outlets/new",
            "/registry/outlets/KZ-ALMATY",
            "/registry/outlets/import",
            "/registry/vehicles",
            "/registry/blocks",
            "/registry/coverage",
        ):
            assert visitor.get(path).status_code == 403, (user.role, path)


def test_a_manufacturer_admin_works_on_the_registry_too(
    session: Session, acme: Manufacturer, make_browser: Any
) -> None:
    admin = make_browser(person(session, "manufacturer_admin", manufacturer=acme))
    answer = admin.post("/registry/outlets/new", outlet_values())
    assert answer.status_code == 303
    assert stored_outlet(session, acme, "KZ-ASTANA") is not None


# -- the production registry import -------------------------------------------------------------


def vins(n: int, start: int = 0) -> list[str]:
    return [factories.make_vin("LGX", i) for i in range(start, start + n)]


def registry_file(vin_list: list[str], *, extra: list[tuple[object, ...]] | None = None) -> bytes:
    rows: list[tuple[object, ...]] = [REGISTRY_HEADER]
    rows += [(v, "Example", "E1", "2025-03-01") for v in vin_list]
    rows += extra or []
    return csv_bytes(rows)


def start_import(staff: Browser, content: bytes, name: str = "registry.csv", **fields: str) -> Any:
    return staff.post(
        "/registry/vehicles", {"file": upload(content, name), **fields}, content_type="multipart/form-data"
    )


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_a_registry_import_runs_to_done_with_the_counts(
    session: Session, acme: Manufacturer, staff: Browser, imports_dir: Path, suffix: str
) -> None:
    factories.register(session, acme, vins(2))  # two already there: one unchanged, one updated
    rows: list[tuple[object, ...]] = [REGISTRY_HEADER, (vins(1)[0], "Example", "E1", "2025-05-01")]
    rows.append((vins(2)[1], "Example", "E2", "2025-05-01"))
    rows += [(v, "Example", "E1", "2025-03-01") for v in vins(3, start=10)]
    content = csv_bytes(rows) if suffix == "csv" else xlsx_bytes(rows)

    before = page(staff.get("/registry/vehicles"))
    assert "The registry holds 2 VINs." in before
    answer = start_import(staff, content, f"registry-{suffix}.{suffix}")
    assert answer.status_code == 303
    job_path = answer.headers["Location"]
    assert re.search(r"/registry/vehicles/imports/\d+$", job_path)

    done = page(staff.get(job_path))
    assert "The registry was imported" in done
    assert re.search(r'<strong class="num">3</strong> added', done)
    assert re.search(r'<strong class="num">1</strong> updated', done)
    assert re.search(r'<strong class="num">1</strong> unchanged', done)
    assert f"registry-{suffix}.{suffix}" in done
    assert registered(session, acme) == 5

    status = staff.get(job_path + "/status")
    assert status.mimetype == "application/json"
    body = status.get_json()
    assert body["state"] == "done"
    assert body["percent"] == 100
    assert body["rows_done"] == 5
    assert body["error"] is None
    assert (body["result"]["added"], body["result"]["updated"], body["result"]["unchanged"]) == (3, 1, 1)

    listing = page(staff.get("/registry/vehicles"))
    assert "The registry holds 5 VINs." in listing
    assert "3 added, 1 updated, 1 unchanged" in listing
    assert not list(imports_dir.rglob("*.*")), "the stored upload is deleted when the job ends"
    session.expire_all()
    job = session.scalar(select(ImportJob).where(ImportJob.manufacturer_id == acme.id))
    assert job is not None
    assert job.state == ImportState.DONE.value
    assert job.bytes_done == job.bytes_total == len(content)
    assert not Path(job.stored_path).exists()
    assert Path(job.stored_path).parent.parent == imports_dir  # instance/imports/<random>/<name>


def test_a_bad_registry_file_shows_the_rejected_lines_and_imports_nothing(
    session: Session, acme: Manufacturer, staff: Browser
) -> None:
    bad = [(f"BAD{n:04d}", "Example", "E1", "") for n in range(250)]
    content = registry_file(vins(3), extra=[("LRWYGCEK7RC654321", "Example", "E1", ""), *bad])
    answer = start_import(staff, content)
    done = page(staff.get(answer.headers["Location"]))
    assert "Nothing was imported" in done
    assert "The first 200 of 251 invalid rows:" in done
    table = done[done.index('class="rejected-lines"') :]
    assert re.search(r'<td class="num">5</td><td>VIN LRWYGCEK7RC654321 does not carry a WMI of ACME', table)
    assert len(re.findall(r'<td class="num">\d+</td>', table)) == 200
    assert registered(session, acme) == 0
    status = staff.get(answer.headers["Location"] + "/status").get_json()
    assert status["state"] == "failed"
    assert status["result"]["imported"] is False
    assert status["result"]["rejected"] == 251
    assert len(status["result"]["errors"]) == 200
    assert "nothing was imported" in status["error"]
    assert status["rows_done"] == 254


def test_skip_invalid_imports_the_valid_rows_and_lists_the_others(
    session: Session, acme: Manufacturer, staff: Browser
) -> None:
    content = registry_file(vins(3), extra=[("NOT-A-VIN", "Example", "E1", "")])
    answer = start_import(staff, content, skip_invalid="y")
    done = page(staff.get(answer.headers["Location"]))
    assert "The registry was imported" in done
    assert re.search(r'<strong class="num">1</strong> invalid rows skipped', done)
    assert re.search(r'<td class="num">5</td><td>VIN', done)
    assert registered(session, acme) == 3


def test_the_upload_form_refuses_a_missing_or_wrong_file_beside_the_field(
    session: Session, acme: Manufacturer, staff: Browser
) -> None:
    missing = staff.post("/registry/vehicles", {}, content_type="multipart/form-data")
    assert missing.status_code == 422
    assert "Choose a file." in error_beside(page(missing), "file")
    wrong = start_import(staff, b"vin\n", "registry.pdf")
    assert wrong.status_code == 422
    assert "Choose a .csv or .xlsx file." in error_beside(page(wrong), "file")
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_the_status_answers_the_progress_of_a_running_job(
    session: Session, acme: Manufacturer, aftersales: User, staff: Browser
) -> None:
    job = ImportJob(
        manufacturer_id=acme.id,
        kind="vehicles",
        filename="big.csv",
        stored_path="/nonexistent/big.csv",
        state=ImportState.RUNNING.value,
        rows_done=12_345,
        bytes_total=1000,
        bytes_done=250,
        created_by=aftersales.email,
    )
    session.add(job)
    session.commit()
    status = staff.get(f"/registry/vehicles/imports/{job.id}/status").get_json()
    assert status == {"state": "running", "rows_done": 12_345, "percent": 25, "result": None, "error": None}
    html = page(staff.get(f"/registry/vehicles/imports/{job.id}"))
    assert '<progress id="job-progress" max="100" value="25">' in html
    assert "12,345 rows read (25 %)" in html
    assert f'data-job-status="/registry/vehicles/imports/{job.id}/status"' in html
    assert "/static/js/registry.js" in html
    assert f'href="/registry/vehicles/imports/{job.id}">Refresh</a>' in html  # works without JavaScript
    assert "<script>" not in html  # no inline script (the coming CSP)


def test_the_import_reports_its_progress_every_batch(
    session: Session, acme: Manufacturer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_service, "BATCH_SIZE", 2)
    path = tmp_path / "registry.csv"
    path.write_bytes(registry_file(vins(5)))
    reports: list[tuple[int, int]] = []
    result = registry_service.import_vehicles(
        session=session,
        manufacturer_code=acme.code,
        path=path,
        progress=lambda rows, line: reports.append((rows, line)),
    )
    assert result.added == 5
    assert reports == [(2, 3), (4, 5), (5, 6)]


def test_another_manufacturers_import_jobs_are_not_found(
    session: Session, acme: Manufacturer, rival: Manufacturer, make_browser: Any
) -> None:
    rival_staff = make_browser(person(session, "aftersales", manufacturer=rival))
    answer = start_import(
        rival_staff, csv_bytes([REGISTRY_HEADER, (factories.make_vin("LRW", 1), "R", "R1", "")]), "rival-registry.csv"
    )
    job_path = answer.headers["Location"]
    ours = make_browser(person(session, "aftersales", manufacturer=acme))
    assert ours.get(job_path).status_code == 404
    assert ours.get(job_path + "/status").status_code == 404
    assert "rival-registry.csv" not in page(ours.get("/registry/vehicles"))
    assert "rival-registry.csv" in page(rival_staff.get("/registry/vehicles"))


# -- the threaded import, on a database of its own ----------------------------------------------


@pytest.fixture
def own_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of the test's backend that the app uses for real (no shared
    test connection), so the job can run in its own thread as in production."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'threaded.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    admin = make_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    name = f"issuer_thread_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_engine(TEST_DATABASE_URL).url.set(database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_import_runs_in_a_background_thread_and_the_page_follows_it(
    own_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_service, "BATCH_SIZE", 50)
    settings = Settings(
        database_url=own_database,
        secret_key="test-secret-" + uuid.uuid4().hex,
        keys_dir=tmp_path / "keys",
        key_passphrase="test-passphrase",
        ratelimit_enabled=False,
    )
    database = Database(own_database)
    app = create_app(settings, database=database)
    app.config["ISSUER_IMPORTS_DIR"] = str(tmp_path / "imports")
    app.config["ISSUER_INLINE_JOBS"] = False
    try:
        with database.session() as session:
            maker = factories.manufacturer(session, "THREAD", wmis=("LGX",))
            user = person(session, "aftersales", manufacturer=maker)
        staff = Browser(app.test_client()).sign_in(user)
        content = registry_file(factories.random_vins("LGX", 2_000, seed=7))
        answer = start_import(staff, content, "threaded.csv")
        assert answer.status_code == 303
        status_path = answer.headers["Location"] + "/status"
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = staff.get(status_path).get_json()
            seen.append(status)
            if status["state"] in ("done", "failed"):
                break
            time.sleep(0.02)
        assert seen[-1]["state"] == "done", seen[-1]
        assert seen[-1]["result"]["added"] == 2_000
        assert seen[-1]["percent"] == 100
        assert all(s["state"] in ("queued", "running", "done") for s in seen)
        assert "2000 added, 0 updated, 0 unchanged" in page(staff.get("/registry/vehicles"))
        with database.session() as session:
            assert (
                session.scalar(
                    select(func.count())
                    .select_from(RegisteredVehicle)
                    .where(RegisteredVehicle.manufacturer_id == maker.id)
                )
                == 2_000
            )
            job = session.scalar(select(ImportJob))
            assert job is not None
            assert job.rows_done == 2_000
            assert job.finished_at is not None
        assert not list((tmp_path / "imports").rglob("*.*"))
    finally:
        database.engine.dispose()


# -- the negative list --------------------------------------------------------------------------


def precheck_reasons(session: Session, manufacturer: Manufacturer, exporter: Any) -> list[str]:
    session.expire_all()
    _, assessment = precheck_for_manufacturer(
        session=session,
        manufacturer_code=manufacturer.code,
        exporter=exporter,
        application_date=TODAY + dt.timedelta(days=10),
        vehicles=[
            VehicleDeclaration(
                vin=vins(1)[0],
                brand="Example",
                model="E1",
                registration_date=TODAY - dt.timedelta(days=30),
                destination="KZ",
            )
        ],
    )
    return [r.value for r in assessment.vehicles[0].reasons]


def test_blocking_and_lifting_an_exporter(
    session: Session, acme: Manufacturer, aftersales: User, staff: Browser
) -> None:
    factories.register(session, acme, vins(1))
    factories.outlet(session, acme, code="KZ-ALMATY", country="KZ")
    trader = factories.exporter(session, "TRADER")
    assert ReasonCode.EXPORTER_BLOCKED.value not in precheck_reasons(session, acme, trader)

    empty = staff.post("/registry/blocks", {"exporter": "trader", "reason": "  "})
    assert empty.status_code == 422
    html = page(empty)
    assert error_beside(html, "reason")
    assert input_value(html, "exporter") == "trader"
    unknown = staff.post("/registry/blocks", {"exporter": "NOBODY", "reason": "Forged papers"})
    assert unknown.status_code == 422
    assert "no exporter with code 'NOBODY'" in error_beside(page(unknown), "exporter")
    assert "Forged papers" in page(unknown)

    answer = staff.post("/registry/blocks", {"exporter": "trader", "reason": "Forged export papers"})
    assert answer.status_code == 303
    listed = page(staff.get("/registry/blocks"))
    in_force = listed[listed.index('class="blocks-active"') : listed.index('id="lifted-heading"')]
    assert "TRADER" in in_force
    assert "Forged export papers" in in_force
    assert aftersales.email in in_force
    assert ReasonCode.EXPORTER_BLOCKED.value in precheck_reasons(session, acme, trader)

    twice = staff.post("/registry/blocks", {"exporter": "TRADER", "reason": "Again"})
    assert twice.status_code == 422
    assert "already on" in error_beside(page(twice), "exporter")

    assert 'data-confirm="Take TRADER off the negative list?' in listed
    lifted = staff.post("/registry/blocks/TRADER/lift", {"reason": "Papers checked"}, form_page="/registry/blocks")
    assert lifted.status_code == 303
    after = page(staff.get("/registry/blocks"))
    assert "No exporter is on the list." in after
    history = after[after.index('class="blocks-lifted"') :]
    assert "TRADER" in history
    assert "Papers checked" in history
    assert "Forged export papers" in history
    assert ReasonCode.EXPORTER_BLOCKED.value not in precheck_reasons(session, acme, trader)

    not_blocked = staff.post("/registry/blocks/TRADER/lift", {}, form_page="/registry/blocks")
    assert not_blocked.status_code == 409
    assert "is not on" in page(not_blocked)


def test_the_negative_list_is_the_manufacturers_own(
    session: Session, acme: Manufacturer, rival: Manufacturer, staff: Browser
) -> None:
    from issuer.services import organisations

    trader = factories.exporter(session, "TRADER")
    organisations.block_exporter(
        session=session, manufacturer_code=rival.code, exporter_code=trader.code, reason="Rival's own reason"
    )
    listed = page(staff.get("/registry/blocks"))
    assert "Rival's own reason" not in listed
    assert "No exporter is on the list." in listed
    lifted = staff.post("/registry/blocks/TRADER/lift", {}, form_page="/registry/blocks")
    assert lifted.status_code == 409
    session.expire_all()
    assert organisations.active_block(session, manufacturer_id=rival.id, exporter_id=trader.id) is not None


# -- review fixes: zip bombs, abandoned and concurrent jobs, unsaved outcomes, errors in place -----


def bomb_xlsx(rows: list[tuple[object, ...]], *, padding_bytes: int) -> bytes:
    """A real workbook whose sheet XML carries ``padding_bytes`` of blank space: a few KB packed,
    more than ``padding_bytes`` unpacked (the shape of a zip bomb)."""
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(xlsx_bytes(rows)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"<sheetData>", b"<sheetData>" + b" " * padding_bytes, 1)
            target.writestr(info.filename, data)
    return out.getvalue()


@pytest.fixture
def no_openpyxl(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """openpyxl's loader, made to record (and refuse) any call: an oversized archive must be
    refused before openpyxl opens it."""
    import openpyxl

    calls: list[str] = []

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        calls.append("load_workbook")
        raise AssertionError("openpyxl opened an archive that should have been refused")

    monkeypatch.setattr(openpyxl, "load_workbook", refuse)
    return calls


def test_a_registry_xlsx_unpacking_beyond_the_limit_is_refused_beside_the_field_unopened(
    session: Session,
    acme: Manufacturer,
    staff: Browser,
    imports_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_openpyxl: list[str],
) -> None:
    monkeypatch.setattr(registry_service, "MAX_UNPACKED_BYTES", 1024 * 1024)
    content = bomb_xlsx([REGISTRY_HEADER, (vins(1)[0], "Example", "E1", "")], padding_bytes=3 * 1024 * 1024)
    assert len(content) < 100_000
    calls = no_openpyxl
    answer = start_import(staff, content, "bomb.xlsx")
    assert answer.status_code == 422
    assert "unpacks to 3 MB, more than the 1 MB allowed" in error_beside(page(answer), "file")
    assert calls == []
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 0
    assert not list(imports_dir.rglob("*.*")), "the refused upload is deleted"
    assert registered(session, acme) == 0


def test_a_queued_oversized_xlsx_fails_its_job_without_openpyxl_opening_it(
    session: Session,
    acme: Manufacturer,
    aftersales: User,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bound_database: Any,
    no_openpyxl: list[str],
) -> None:
    from issuer.services import import_jobs

    monkeypatch.setattr(registry_service, "MAX_UNPACKED_BYTES", 1024 * 1024)
    content = bomb_xlsx([REGISTRY_HEADER, (vins(1)[0], "Example", "E1", "")], padding_bytes=2 * 1024 * 1024)
    stored = import_jobs.store_upload(io.BytesIO(content), directory=tmp_path / "jobs", filename="bomb.xlsx")
    job = import_jobs.create_vehicle_import(
        session=session,
        manufacturer=acme,
        stored=stored,
        filename="bomb.xlsx",
        skip_invalid=False,
        actor=aftersales.email,
    )
    import_jobs.run_vehicle_import(bound_database, job.id, commit_progress=False)
    session.expire_all()
    assert job.state == ImportState.FAILED.value
    assert job.error is not None
    assert "unpacks to 2 MB, more than the 1 MB allowed" in job.error
    assert no_openpyxl == []
    assert not stored.path.exists()


def test_an_outlet_xlsx_unpacking_beyond_the_limit_is_refused_beside_the_field(
    session: Session, acme: Manufacturer, staff: Browser, monkeypatch: pytest.MonkeyPatch, no_openpyxl: list[str]
) -> None:
    from issuer.services import outlets as outlet_service

    monkeypatch.setattr(outlet_service, "MAX_UNPACKED_BYTES", 1024 * 1024)
    header = tuple(outlet_service.OUTLET_COLUMNS)
    content = bomb_xlsx([header], padding_bytes=2 * 1024 * 1024)
    calls = no_openpyxl
    answer = staff.post(
        "/registry/outlets/import", {"file": upload(content, "outlets.xlsx")}, content_type="multipart/form-data"
    )
    assert answer.status_code == 422
    assert "unpacks to 2 MB, more than the 1 MB allowed" in error_beside(page(answer), "file")
    assert calls == []


def stale_job(
    session: Session, manufacturer: Manufacturer, user: User, folder: Path, *, minutes: int, state: str
) -> ImportJob:
    from issuer import clock

    stored = folder / uuid.uuid4().hex / "left-behind.csv"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(registry_file(vins(3)))
    job = ImportJob(
        manufacturer_id=manufacturer.id,
        kind="vehicles",
        filename="left-behind.csv",
        stored_path=str(stored),
        state=state,
        bytes_total=stored.stat().st_size,
        created_by=user.email,
        created_at=clock.now_utc() - dt.timedelta(minutes=minutes),
    )
    session.add(job)
    session.commit()
    return job


@pytest.mark.parametrize("state", ["queued", "running"])
def test_a_job_abandoned_by_a_dead_thread_is_failed_and_its_file_deleted_when_a_page_is_loaded(
    session: Session, acme: Manufacturer, aftersales: User, staff: Browser, imports_dir: Path, state: str
) -> None:
    old = stale_job(session, acme, aftersales, imports_dir, minutes=31, state=state)
    young = stale_job(session, acme, aftersales, imports_dir, minutes=5, state=state)
    listing = page(staff.get("/registry/vehicles"))
    assert "left-behind.csv" in listing
    session.expire_all()
    assert old.state == ImportState.FAILED.value
    assert old.error is not None
    assert "stopped before it finished" in old.error
    assert old.finished_at is not None
    assert not Path(old.stored_path).exists()
    assert young.state == state, "a recent job may still be running in another process"
    assert Path(young.stored_path).exists()
    job_page = page(staff.get(f"/registry/vehicles/imports/{old.id}"))
    assert "stopped before it finished" in job_page


def test_a_job_page_reaps_too(
    session: Session, acme: Manufacturer, aftersales: User, staff: Browser, imports_dir: Path
) -> None:
    old = stale_job(session, acme, aftersales, imports_dir, minutes=45, state="running")
    status = staff.get(f"/registry/vehicles/imports/{old.id}/status").get_json()
    assert status["state"] == "failed"
    assert "stopped before it finished" in status["error"]
    assert not Path(old.stored_path).exists()


def test_a_second_registry_import_is_refused_while_one_is_running(
    session: Session,
    acme: Manufacturer,
    rival: Manufacturer,
    aftersales: User,
    staff: Browser,
    imports_dir: Path,
    make_browser: Any,
) -> None:
    running = stale_job(session, acme, aftersales, imports_dir, minutes=2, state="running")
    answer = start_import(staff, registry_file(vins(2)), "second.csv")
    assert answer.status_code == 422
    assert "Another import of the registry is still running" in error_beside(page(answer), "file")
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 1
    assert [p.name for p in imports_dir.rglob("*.*")] == ["left-behind.csv"]
    assert registered(session, acme) == 0
    # Another manufacturer's import is not held up by it.
    rival_staff = make_browser(person(session, "aftersales", manufacturer=rival))
    other = start_import(rival_staff, csv_bytes([REGISTRY_HEADER, (factories.make_vin("LRW", 1), "R", "R1", "")]))
    assert other.status_code == 303
    # Once the running one ends, a new import is accepted.
    running.state = ImportState.DONE.value
    session.commit()
    assert start_import(staff, registry_file(vins(2)), "second.csv").status_code == 303
    assert registered(session, acme) == 2


def test_a_job_whose_outcome_cannot_be_saved_is_marked_failed_and_logged(
    session: Session, acme: Manufacturer, staff: Browser, imports_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import event

    def disk_full(job_session: Session) -> None:
        for item in list(job_session.dirty):
            if isinstance(item, ImportJob) and item.state == ImportState.DONE.value:
                raise OSError("disk full")

    event.listen(Session, "before_commit", disk_full)
    try:
        answer = start_import(staff, registry_file(vins(2)), "unsaved.csv")
    finally:
        event.remove(Session, "before_commit", disk_full)
    assert answer.status_code == 303
    done = staff.get(answer.headers["Location"] + "/status").get_json()
    assert done["state"] == "failed"
    assert "could not be saved" in done["error"]
    assert "could not be saved" in caplog.text
    assert not list(imports_dir.rglob("*.*"))
    # The job is no longer open, so the next import is accepted.
    assert start_import(staff, registry_file(vins(2)), "again.csv").status_code == 303


def test_reactivating_an_outlet_the_rules_refuse_says_why_on_the_page(
    session: Session, acme: Manufacturer, staff: Browser
) -> None:
    outlet = factories.outlet(session, acme, code="KZ-ALMATY", country="KZ", valid_from=dt.date(2026, 1, 1))
    staff.post("/registry/outlets/KZ-ALMATY/active", {"active": "0"}, form_page="/registry/outlets/KZ-ALMATY")
    # A stored period the rules no longer accept (written outside the pages, e.g. by an old import).
    session.execute(
        text("UPDATE outlets SET valid_to = :to WHERE id = :id"), {"to": dt.date(2025, 6, 1), "id": outlet.id}
    )
    session.commit()
    answer = staff.post("/registry/outlets/KZ-ALMATY/active", {"active": "1"}, form_page="/registry/outlets/KZ-ALMATY")
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/registry/outlets/KZ-ALMATY")
    shown = page(staff.get(answer.headers["Location"]))
    assert re.search(
        r'class="flash error"[^>]*>[^<]*Outlet KZ-ALMATY was not changed: valid_to 2025-06-01 is before', shown
    )
    stored = stored_outlet(session, acme, "KZ-ALMATY")
    assert stored is not None
    assert stored.active is False
    from_list = staff.post(
        "/registry/outlets/KZ-ALMATY/active", {"active": "1", "next": "list"}, form_page="/registry/outlets"
    )
    assert from_list.headers["Location"].endswith("/registry/outlets")


def test_a_refused_lift_keeps_the_typed_reason_with_the_error_beside_it(
    session: Session, acme: Manufacturer, staff: Browser
) -> None:
    from issuer.services import organisations

    trader = factories.exporter(session, "TRADER")
    block = organisations.block_exporter(
        session=session, manufacturer_code=acme.code, exporter_code=trader.code, reason="Forged papers"
    )
    too_long = "checked " * 300
    answer = staff.post("/registry/blocks/TRADER/lift", {"reason": too_long}, form_page="/registry/blocks")
    assert answer.status_code == 422
    html = page(answer)
    field_id = f"lift-reason-{block.id}"
    assert input_value(html, field_id) == too_long
    assert "2000" in error_beside(html, field_id)
    assert f'aria-describedby="{field_id}-error"' in html
    assert 'class="form-errors"' not in html, "the error is beside the field, not at the top"
    session.expire_all()
    assert organisations.active_block(session, manufacturer_id=acme.id, exporter_id=trader.id) is not None
