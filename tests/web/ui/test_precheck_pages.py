"""The exporter's precheck pages: paste or upload a list, see the verdicts explained, send each
manufacturer its part; bad input is shown beside its field with what was typed kept."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from openpyxl import Workbook, load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from issuer.domain.eligibility import REASON_TEXT, ReasonCode
from issuer.models import Exporter, LetterRequest, Manufacturer, RequestVehicle, User
from issuer.services import declarations, organisations
from issuer.services.tabular import read_rows
from tests import factories
from tests.web.conftest import count
from tests.web.ui.conftest import Browser, csrf_token
from tests.web.ui.issuing import APPLYING_ON, REGISTERED_ON, build_world, issue_through_page

VIN_ACME = "LGXC74C43S0123456"  # WMI LGX
VIN_OTHER = "LRWYGCEK7RC654321"  # WMI LRW
HEADER = "vin\tbrand\tmodel\tregistration_date\tdestination\texport_transfer_date"
# The clock is frozen at 2026-09-15 (China), the default application date: registered
# 2026-06-01 is day 106, so a letter is needed until 2026-11-29 (registration + 181 days).
ELIGIBLE_LINE = f"{VIN_ACME}\tExample\tE1\t2026-06-01\tKZ"


def reason_en(code: ReasonCode) -> str:
    """A reason's English text as the page's HTML holds it."""
    return str(escape(REASON_TEXT[code][1]))


def text_of(response: Any) -> str:
    return response.get_data(as_text=True)


def sections(html: str) -> dict[str, str]:
    """Each manufacturer's section of the report, by code."""
    found = re.findall(r'<section class="card precheck-part"[^>]*id="part-([A-Z0-9]+)">(.*?)</section>', html, re.S)
    return dict(found)


def send_forms(html: str) -> dict[str, dict[str, str]]:
    """The hidden fields of each section's send form, by manufacturer code."""
    forms = {}
    for body in re.findall(r'<form method="post" action="/precheck/submit" class="send-part">(.*?)</form>', html, re.S):
        fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', body))
        fields = {k: v.replace("&#34;", '"').replace("&quot;", '"').replace("&amp;", "&") for k, v in fields.items()}
        forms[fields["manufacturer"]] = fields
    return forms


@pytest.fixture
def acme(session: Session) -> Manufacturer:
    manufacturer = factories.manufacturer(session, "ACME", wmis=("LGX",))
    factories.outlet(session, manufacturer, code="KZ-ALMATY", country="KZ")
    return manufacturer


@pytest.fixture
def other(session: Session) -> Manufacturer:
    manufacturer = factories.manufacturer(session, "OTHER", wmis=("LRW",))
    factories.outlet(session, manufacturer, code="KZ-OTHER", country="KZ")
    factories.outlet(session, manufacturer, code="RU-OTHER", country="RU")
    return manufacturer


@pytest.fixture
def exporter_org(session: Session) -> Exporter:
    return factories.exporter(session, "EXP1")


@pytest.fixture
def clerk(session: Session, exporter_org: Exporter) -> User:
    return factories.user(session, "exporter", exporter=exporter_org)


@pytest.fixture
def signed_in(browser: Browser, clerk: User, acme: Manufacturer) -> Browser:
    """The clerk, signed in, with English chosen (a new user's pages are in Chinese)."""
    return choose_language(browser.sign_in(clerk), "en")


def choose_language(b: Browser, language: str) -> Browser:
    answer = b.post("/language", {"language": language, "next": "/precheck"}, form_page="/precheck")
    assert answer.status_code == 302
    return b


def check(b: Browser, text: str = "", **fields: Any) -> Any:
    """Post the list form as a browser does (multipart, with the page's CSRF token)."""
    data = {"application_date": "2026-09-15", "reference": "", "vehicles": text, **fields}
    data.setdefault("csrf_token", csrf_token(text_of(b.get("/precheck"))))
    # Encoded in memory: the test client would spool a large body to a file it never closes.
    boundary, body = encode_multipart(data)
    return b.client.post("/precheck", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def upload(b: Browser, name: str, content: bytes, **fields: Any) -> Any:
    return check(b, "", upload=FileStorage(io.BytesIO(content), filename=name), **fields)


# -- the form --------------------------------------------------------------------------------


def test_precheck_page_offers_the_form_with_today_in_china_and_the_templates(signed_in: Browser) -> None:
    page = signed_in.get("/precheck")

    assert page.status_code == 200
    html = text_of(page)
    assert 'name="application_date"' in html
    assert 'value="2026-09-15"' in html  # the frozen today, in China
    assert 'name="vehicles"' in html
    assert 'type="file"' in html
    assert 'enctype="multipart/form-data"' in html
    assert "/precheck/template.xlsx" in html
    assert "/precheck/template.csv" in html
    assert "export_transfer_date" in html  # the columns are explained
    assert csrf_token(html)


# -- verdicts --------------------------------------------------------------------------------


def test_pasted_list_gets_a_verdict_per_vehicle_with_every_reason_in_words(signed_in: Browser) -> None:
    pasted = "\n".join(
        [
            ELIGIBLE_LINE,
            "LGXC74C43S0123457\tExample\tE1\t2026-06-01\tKZ",  # wrong check digit
            "LGXAB1C20TA000017\tExample\tE1\t2026-01-10\tkz",  # registered 248 days before: not required
            "LGXAB1C2XTA000025\tExample\tE1\t2026-06-01\tEU",  # a bloc, not a country
        ]
    )

    page = check(signed_in, pasted, reference="CONTRACT-7")

    assert page.status_code == 200, text_of(page)
    html = text_of(page)
    part = sections(html)["ACME"]
    assert "Test Motor" in part  # the manufacturer's name in the page's language (English)
    assert VIN_ACME in part
    assert "Letter can be issued" in part
    assert "No letter needed" in part
    assert "Refused" in part
    assert "No letter needed from 2026-11-29" in part
    assert reason_en(ReasonCode.VIN_CHECK_DIGIT) in part
    assert reason_en(ReasonCode.NOT_REQUIRED_AFTER_180_DAYS) in part
    assert reason_en(ReasonCode.DESTINATION_INVALID) in part
    assert "KZ · Kazakhstan" in part
    counts = dict(re.findall(r'<span class="badge (\w+)">[^<]+</span> <strong class="num">(\d+)</strong>', part))
    assert counts == {"eligible": "1", "not_required": "1", "refused": "2"}
    assert "Send request to Test Motor" in part
    assert 'class="table-wrap"' in part
    assert 'data-label="Why"' in part  # the stacked layout at 375 px labels every cell
    # What was typed stays in the form for the next check.
    assert 'value="CONTRACT-7"' in html
    assert str(escape(pasted.splitlines()[0])) in html


def test_pasted_header_is_skipped_and_followed_when_it_orders_the_columns_differently(signed_in: Browser) -> None:
    pasted = f"destination,vin,registration_date,brand,model\nKZ,{VIN_ACME},2026-06-01,Example,E1\n"

    page = check(signed_in, pasted)

    assert page.status_code == 200, text_of(page)
    part = sections(text_of(page))["ACME"]
    assert VIN_ACME in part
    assert "No letter needed from 2026-11-29" in part
    assert "1 vehicle checked" in text_of(page)


def test_warnings_name_several_destinations_in_the_warnings_box(signed_in: Browser, session: Session) -> None:
    factories.outlet(session, session.get(Manufacturer, session.scalar(select(Manufacturer.id))), country="RU")
    pasted = f"{ELIGIBLE_LINE}\nLGXAB1C20TA000017\tExample\tE1\t2026-06-01\tRU"

    html = text_of(check(signed_in, pasted))

    warnings = re.search(r'<div class="warnings"[^>]*>(.*?)</div>', html, re.S)
    assert warnings
    assert "2 countries (KZ, RU)" in warnings.group(1)


def test_vehicles_of_no_hosted_manufacturer_are_listed_apart_with_their_reason(signed_in: Browser) -> None:
    pasted = f"{ELIGIBLE_LINE}\n{VIN_OTHER}\tOther\tO1\t2026-06-01\tKZ\nNOT-A-VIN\tExample\tE1\t2026-06-01\tKZ"

    html = text_of(check(signed_in, pasted))

    unassigned = html[html.index('id="unassigned"') :]
    assert VIN_OTHER in unassigned
    assert "No manufacturer hosted here holds this VIN" in unassigned
    assert "NOT-A-VIN" in unassigned
    assert reason_en(ReasonCode.VIN_FORMAT) in unassigned
    assert set(sections(html)) == {"ACME"}
    assert VIN_OTHER not in sections(html)["ACME"]


def test_uploaded_csv_is_read_by_its_header(signed_in: Browser) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["model", "vin", "brand", "destination", "registration_date", "remarks"])
    writer.writerow(["E1", VIN_ACME, "Example", "KZ", "2026-06-01", "anything"])

    page = upload(signed_in, "vehicles.csv", out.getvalue().encode("utf-8"))

    assert page.status_code == 200, text_of(page)
    part = sections(text_of(page))["ACME"]
    assert VIN_ACME in part
    assert "No letter needed from 2026-11-29" in part


def test_uploaded_xlsx_with_date_cells_is_read(signed_in: Browser) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(list(declarations.COLUMNS[:6]))
    sheet.append([VIN_ACME, "Example", "E1", dt.date(2026, 6, 1), "KZ", None])
    sheet.append(["LGXAB1C20TA000017", "Example", "E1", dt.datetime(2025, 12, 1), "KZ", dt.date(2025, 12, 20)])
    data = io.BytesIO()
    workbook.save(data)

    page = upload(signed_in, "vehicles.xlsx", data.getvalue())

    assert page.status_code == 200, text_of(page)
    part = sections(text_of(page))["ACME"]
    assert "No letter needed from 2026-11-29" in part
    assert reason_en(ReasonCode.EXEMPT_TRANSFERRED_BEFORE_2026) in part


def test_reasons_are_in_chinese_on_the_chinese_page(signed_in: Browser) -> None:
    choose_language(signed_in, "zh")

    html = text_of(check(signed_in, "LGXC74C43S0123457\tExample\tE1\t2026-06-01\tKZ"))

    assert str(escape(REASON_TEXT[ReasonCode.VIN_CHECK_DIGIT][0])) in html
    assert "哈萨克斯坦" in html
    assert "测试汽车制造有限公司" in html  # the MIIT-listed name


# -- a list of two manufacturers -------------------------------------------------------------


def test_list_of_two_manufacturers_is_split_and_each_part_is_sent_to_its_own(
    signed_in: Browser, session: Session, acme: Manufacturer, other: Manufacturer, clerk: User
) -> None:
    other_two = "LRWAB1C27TA000011"
    pasted = "\n".join(
        [
            HEADER,
            f"{VIN_OTHER}\tOther\tO1\t2026-06-01\tKZ",
            ELIGIBLE_LINE,
            f"{other_two}\tOther\tO1\t2026-06-02\tRU",
        ]
    )

    page = check(signed_in, pasted, reference="LIC-2026-1")

    html = text_of(page)
    assert set(sections(html)) == {"ACME", "OTHER"}
    assert "belong to 2 manufacturers (ACME, OTHER)" in html
    assert VIN_OTHER in sections(html)["OTHER"]
    assert VIN_OTHER not in sections(html)["ACME"]
    forms = send_forms(html)
    assert set(forms) == {"ACME", "OTHER"}

    sent = {}
    for code in ("OTHER", "ACME"):
        answer = signed_in.post("/precheck/submit", {**forms[code], "supersedes": ""}, form_page="/precheck")
        assert answer.status_code == 302, text_of(answer)
        location = answer.headers["Location"]
        match = re.fullmatch(r"/requests/(\d+)", location)
        assert match, location
        sent[code] = int(match.group(1))

    session.expire_all()
    for code, vins in (("ACME", [VIN_ACME]), ("OTHER", [VIN_OTHER, other_two])):
        letter_request = session.get(LetterRequest, sent[code])
        assert letter_request is not None
        assert letter_request.manufacturer.code == code
        assert letter_request.exporter_id == clerk.exporter_id
        assert letter_request.reference == "LIC-2026-1"
        assert letter_request.application_date == dt.date(2026, 9, 15)
        stored = session.scalars(
            select(RequestVehicle)
            .where(RequestVehicle.request_id == letter_request.id)
            .order_by(RequestVehicle.position)
        ).all()
        assert [v.vin for v in stored] == vins
        assert all(v.verdict == "eligible" for v in stored)
    assert "sent to OTHER with 2 vehicles" in text_of(signed_in.get("/precheck"))


def test_part_whose_vehicles_are_all_refused_cannot_be_sent(
    signed_in: Browser, session: Session, acme: Manufacturer
) -> None:
    html = text_of(check(signed_in, f"{VIN_ACME}\tExample\tE1\t2026-06-01\tRU"))  # no outlet in Russia

    part = sections(html)["ACME"]
    assert reason_en(ReasonCode.NO_OUTLET_IN_DESTINATION) in part
    assert "Nothing can be sent to" in part
    assert send_forms(html) == {}
    # Posting the part anyway is refused on the server too, and stores nothing.
    payload = declarations.encode(declarations.parse_pasted(f"{VIN_ACME}\tExample\tE1\t2026-06-01\tRU").vehicles)
    answer = signed_in.post(
        "/precheck/submit",
        {"manufacturer": "ACME", "application_date": "2026-09-15", "reference": "", "vehicles": payload},
        form_page="/precheck",
    )
    assert answer.status_code == 422
    assert "every vehicle of this part is refused" in text_of(answer)
    assert count(session, LetterRequest) == 0


# -- tampered or damaged send forms ----------------------------------------------------------


def test_send_form_carrying_another_manufacturers_vehicles_is_refused_and_stores_nothing(
    signed_in: Browser, session: Session, acme: Manufacturer, other: Manufacturer
) -> None:
    forms = send_forms(text_of(check(signed_in, ELIGIBLE_LINE)))
    tampered = declarations.encode(
        declarations.parse_pasted(f"{ELIGIBLE_LINE}\n{VIN_OTHER}\tOther\tO1\t2026-06-01\tKZ").vehicles
    )

    answer = signed_in.post("/precheck/submit", {**forms["ACME"], "vehicles": tampered}, form_page="/precheck")

    assert answer.status_code == 422
    html = text_of(answer)
    assert "Nothing was sent" in html
    assert f"not vehicles of ACME ({VIN_OTHER})" in html
    assert set(sections(html)) == {"ACME", "OTHER"}  # shown again, split as it should be
    assert count(session, LetterRequest) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"vehicles": "not json"},
        {"vehicles": json.dumps({"v": 1, "vehicles": [["x"]]})},
        {"vehicles": json.dumps({"v": 1, "vehicles": [[VIN_ACME, "", "E1", "2026-06-01", "KZ", None]]})},
        {"vehicles": json.dumps({"v": 1, "vehicles": []})},
        {"vehicles": ""},
        {"application_date": "yesterday"},
        {"manufacturer": ""},
    ],
    ids=["junk", "short-row", "blank-brand", "empty-list", "no-list", "bad-date", "no-manufacturer"],
)
def test_damaged_send_form_is_refused_with_a_clear_error_and_stores_nothing(
    signed_in: Browser, session: Session, change: dict[str, str]
) -> None:
    forms = send_forms(text_of(check(signed_in, ELIGIBLE_LINE)))

    answer = signed_in.post("/precheck/submit", {**forms["ACME"], **change}, form_page="/precheck")

    assert answer.status_code == 422
    assert "changed or is damaged. Nothing was sent" in text_of(answer)
    assert count(session, LetterRequest) == 0


def test_unknown_superseded_letter_is_shown_beside_its_field_with_the_number_kept(
    signed_in: Browser, session: Session
) -> None:
    forms = send_forms(text_of(check(signed_in, ELIGIBLE_LINE)))

    answer = signed_in.post(
        "/precheck/submit", {**forms["ACME"], "supersedes": "ACME-2026-999999"}, form_page="/precheck"
    )

    assert answer.status_code == 422
    part = sections(text_of(answer))["ACME"]
    field = re.search(r'<div class="field has-error">(.*?)</div>', part, re.S)
    assert field, part
    assert 'value="ACME-2026-999999"' in field.group(1)
    assert "is not a valid letter of yours from ACME" in field.group(1)
    assert count(session, LetterRequest) == 0


def test_sending_needs_a_csrf_token(signed_in: Browser, session: Session) -> None:
    forms = send_forms(text_of(check(signed_in, ELIGIBLE_LINE)))
    fields = {k: v for k, v in forms["ACME"].items() if k != "csrf_token"}

    answer = signed_in.client.post("/precheck/submit", data=fields)

    assert answer.status_code == 400
    assert count(session, LetterRequest) == 0
    assert signed_in.client.post("/precheck", data={"vehicles": ELIGIBLE_LINE}).status_code == 400


# -- bad input -------------------------------------------------------------------------------


def field_error(html: str, field_id: str) -> str:
    match = re.search(rf'<ul class="error line-errors" id="{field_id}-error">(.*?)</ul>', html, re.S)
    assert match, f"no error beside {field_id}"
    return match.group(1)


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        ("   \n\n", "Paste the vehicles here, or upload a file below."),
        (f"{ELIGIBLE_LINE}\n{VIN_ACME}\tExample\tE1", "line 2: found 3 columns; expected 5 to 7"),
        (
            f"{VIN_ACME}\tExample\tE1\t2026/13/01\tKZ",
            "line 1: registration_date &#39;2026/13/01&#39; is not a date YYYY-MM-DD",
        ),
        (f"{VIN_ACME}\t\tE1\t2026-06-01\tKZ", "line 1: brand is empty"),
        (f"{VIN_ACME}\tExample\tE1\t2026-06-01\tKZ\t1.1.2026", "line 1: export_transfer_date &#39;1.1.2026&#39;"),
        ("vin,brand,model\nx,y,z", "line 1: the header lacks the column(s) registration_date, destination"),
        (f"{VIN_ACME}\tExample\tE1\t2026-06-01\tKZ\t\tEXAMPLE - delete this row", "example row"),
    ],
    ids=["empty", "short-line", "bad-date", "blank-brand", "bad-transfer-date", "bad-header", "example-row"],
)
def test_bad_paste_is_shown_beside_the_box_with_the_text_kept(
    signed_in: Browser, session: Session, pasted: str, message: str
) -> None:
    page = check(signed_in, pasted, reference="MY-REF")

    assert page.status_code == 422
    html = text_of(page)
    assert message in field_error(html, "vehicles") if pasted.strip() else message in html
    assert f">\r\n{escape(pasted)}</textarea>" in html  # WTForms starts a text box with a line break
    assert 'value="MY-REF"' in html
    assert "precheck-report" not in html
    assert count(session, LetterRequest) == 0


def test_list_of_more_than_ten_thousand_vehicles_is_refused(signed_in: Browser) -> None:
    lines = "\n".join(
        f"{factories.make_vin('LGX', n)}\tExample\tE1\t2026-06-01\tKZ" for n in range(declarations.MAX_VEHICLES + 1)
    )

    page = check(signed_in, lines)

    assert page.status_code == 422
    assert "more than 10,000 vehicles" in field_error(text_of(page), "vehicles")


def test_bad_date_in_the_form_fields_is_shown_beside_it(signed_in: Browser) -> None:
    page = check(signed_in, ELIGIBLE_LINE, application_date="2026-02-30")

    assert page.status_code == 422
    assert re.search(r'<div class="field has-error">\s*<label for="application_date"', text_of(page))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("letter.pdf", b"%PDF-1.7 ...", "letter.pdf is not a CSV or XLSX file"),
        ("vehicles.xlsx", b"vin,brand\n", "vehicles.xlsx is not an XLSX workbook"),
        ("vehicles.csv", b"", "vehicles.csv is empty"),
        ("vehicles.csv", b"vin,brand\n", "the header lacks the column(s) model"),
        ("vehicles.csv", b"vin,brand,model,registration_date,destination\n\xff\xfe\n", "not UTF-8"),
        (
            "vehicles.csv",
            f"vin,brand,model,registration_date,destination\n{VIN_ACME},Example,E1,01/06/2026,KZ\n".encode(),
            "line 2: registration_date &#39;01/06/2026&#39; is not a date YYYY-MM-DD",
        ),
        ("vehicles.csv", b"vin,brand,model,registration_date,destination\n", "the list holds no vehicles"),
    ],
    ids=["pdf", "fake-xlsx", "empty", "bad-header", "not-utf8", "bad-date", "no-rows"],
)
def test_bad_file_is_shown_beside_the_upload_field(
    signed_in: Browser, session: Session, name: str, content: bytes, message: str
) -> None:
    page = upload(signed_in, name, content, reference="KEPT")

    assert page.status_code == 422
    html = text_of(page)
    assert message in field_error(html, "upload")
    assert 'value="KEPT"' in html
    assert count(session, LetterRequest) == 0


def test_file_over_five_megabytes_is_refused(signed_in: Browser) -> None:
    content = b"vin,brand,model,registration_date,destination\n" + b"x" * (declarations.MAX_UPLOAD_BYTES + 1)

    page = upload(signed_in, "big.csv", content)

    assert page.status_code == 422
    assert "big.csv is larger than 5 MB" in field_error(text_of(page), "upload")


def test_xlsx_that_unpacks_to_far_more_than_a_list_is_refused_before_it_is_read(signed_in: Browser) -> None:
    data = io.BytesIO(declarations.template_xlsx(column_help=[], sheet_title="vehicles", help_title="help"))
    with zipfile.ZipFile(data, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", b"\0" * (declarations.MAX_UNPACKED_BYTES + 1))
    assert len(data.getvalue()) < declarations.MAX_UPLOAD_BYTES

    page = upload(signed_in, "bomb.xlsx", data.getvalue())

    assert page.status_code == 422
    assert "unpacks to 50 MB, more than the 50 MB allowed" in field_error(text_of(page), "upload")


def test_xlsx_formula_cells_are_read_as_their_values_never_as_formulas(signed_in: Browser) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(list(declarations.COLUMNS[:5]))
    sheet.append(['=CONCATENATE("LGX","C74C43S0123456")', "Example", "E1", dt.date(2026, 6, 1), "KZ"])
    data = io.BytesIO()
    workbook.save(data)  # openpyxl stores no cached value: the cell reads as empty

    page = upload(signed_in, "formula.xlsx", data.getvalue())

    assert page.status_code == 422
    assert "line 2: vin is empty" in field_error(text_of(page), "upload")


def test_paste_and_file_together_are_refused(signed_in: Browser) -> None:
    page = check(signed_in, ELIGIBLE_LINE, upload=FileStorage(io.BytesIO(b"vin\n"), filename="v.csv"))

    assert page.status_code == 422
    assert "not both" in field_error(text_of(page), "upload")
    assert str(escape(ELIGIBLE_LINE)) in text_of(page)


# -- the template ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_template_parses_back_with_the_same_reader_and_marks_its_example(
    signed_in: Browser, tmp_path: Path, fmt: str
) -> None:
    answer = signed_in.get(f"/precheck/template.{fmt}")

    assert answer.status_code == 200
    assert f"precheck-template.{fmt}" in answer.headers["Content-Disposition"]
    path = tmp_path / f"template.{fmt}"
    path.write_bytes(answer.get_data())
    rows = list(read_rows(path, columns=declarations.COLUMNS, required=declarations.REQUIRED_COLUMNS))
    assert rows == [(2, [VIN_ACME, "Example", "E1", "2026-06-01", "KZ", "", declarations.EXAMPLE_NOTE])]
    # Sent untouched, the example row is named as such rather than checked.
    page = upload(signed_in, f"template.{fmt}", answer.get_data())
    assert page.status_code == 422
    assert "line 2: this is the template&#39;s example row" in field_error(text_of(page), "upload")
    # With the note cleared, the same file is a list of one vehicle.
    if fmt == "xlsx":
        workbook = load_workbook(io.BytesIO(answer.get_data()))
        workbook.worksheets[0]["G2"] = None
        fixed = io.BytesIO()
        workbook.save(fixed)
        content = fixed.getvalue()
        assert workbook.sheetnames[1] == "Columns"
    else:
        content = answer.get_data().replace(declarations.EXAMPLE_NOTE.encode(), b"")
    page = upload(signed_in, f"mine.{fmt}", content)
    assert page.status_code == 200, text_of(page)
    assert "No letter needed from 2026-11-29" in sections(text_of(page))["ACME"]


def test_unknown_template_format_is_not_found(signed_in: Browser) -> None:
    assert signed_in.get("/precheck/template.pdf").status_code == 404


# -- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["aftersales", "manufacturer_admin", "platform_admin"])
def test_only_exporters_use_the_precheck_pages(
    make_browser: Any, session: Session, acme: Manufacturer, role: str
) -> None:
    user = factories.user(session, role, manufacturer=acme if role != "platform_admin" else None)
    b = make_browser(user)
    token = csrf_token(text_of(b.get("/login")))

    assert b.get("/precheck").status_code == 403
    assert b.get("/precheck/template.xlsx").status_code == 403
    assert b.client.post("/precheck", data={"csrf_token": token, "vehicles": ELIGIBLE_LINE}).status_code == 403
    payload = declarations.encode(declarations.parse_pasted(ELIGIBLE_LINE).vehicles)
    sent = b.client.post(
        "/precheck/submit",
        data={
            "csrf_token": token,
            "manufacturer": "ACME",
            "application_date": "2026-09-15",
            "reference": "",
            "vehicles": payload,
        },
    )
    assert sent.status_code == 403
    assert count(session, LetterRequest) == 0


def test_signed_out_visitor_is_sent_to_the_login_page(browser: Browser) -> None:
    answer = browser.get("/precheck")

    assert answer.status_code == 302
    assert "/login" in answer.headers["Location"]


def test_exporter_of_a_blocked_list_sees_why_and_cannot_send(
    signed_in: Browser, session: Session, acme: Manufacturer, exporter_org: Exporter
) -> None:
    organisations.block_exporter(
        session=session, manufacturer_code="ACME", exporter_code=exporter_org.code, reason="dishonest", actor="t"
    )

    html = text_of(check(signed_in, ELIGIBLE_LINE))

    assert reason_en(ReasonCode.EXPORTER_BLOCKED) in sections(html)["ACME"]
    assert send_forms(html) == {}


def test_vehicles_covered_by_a_valid_letter_can_be_sent_as_its_correction(
    make_browser: Any, session: Session, settings: Any
) -> None:
    world = build_world(session, settings)
    number = issue_through_page(make_browser, world, world.vins[:2])
    clerk = make_browser(world.exporter_user)
    pasted = "\n".join(f"{vin}\tExample\tE1\t{REGISTERED_ON.isoformat()}\tKZ" for vin in world.vins[:2])

    html = text_of(check(clerk, pasted, application_date=APPLYING_ON.isoformat()))

    part = sections(html)[world.manufacturer.code]
    assert reason_en(ReasonCode.ALREADY_COVERED) in part
    assert "2 of them only because a valid letter already covers them" in part
    forms = send_forms(html)
    answer = clerk.post(
        "/precheck/submit", {**forms[world.manufacturer.code], "supersedes": number.lower()}, form_page="/precheck"
    )
    assert answer.status_code == 302, text_of(answer)
    session.expire_all()
    correction = session.get(LetterRequest, int(answer.headers["Location"].rsplit("/", 1)[1]))
    assert correction is not None
    assert correction.supersedes_number == number
    assert [v.verdict for v in correction.vehicles] == ["eligible", "eligible"]
    # Without the letter's number the same part is not sent.
    again = clerk.post("/precheck/submit", {**forms[world.manufacturer.code], "supersedes": ""}, form_page="/precheck")
    assert again.status_code == 422
    assert "every vehicle of this part is refused" in text_of(again)


def test_list_larger_than_flasks_default_form_limit_is_checked_and_sent_whole(
    signed_in: Browser, session: Session, acme: Manufacturer
) -> None:
    vins = factories.random_vins("LGX", 4_000, seed=3)
    # Long names make both the pasted text and the send form's list larger than the 500 kB
    # Flask allows a form field by default (a 10,000-vehicle list is about 1 MB).
    model = "E1 " + "long model name " * 6
    pasted = "\n".join(f"{vin}\tExample\t{model}\t2026-06-01\tKZ\t\tshipment 2026-41" for vin in vins)
    assert len(pasted.encode()) > 500_000

    page = check(signed_in, pasted)

    assert page.status_code == 200, text_of(page)[:2000]
    html = text_of(page)
    assert "4000 vehicles checked" in html
    forms = send_forms(html)
    assert len(forms["ACME"]["vehicles"]) > 500_000
    boundary, body = encode_multipart({**forms["ACME"], "supersedes": ""})
    answer = signed_in.client.post(
        "/precheck/submit", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert answer.status_code == 302, text_of(answer)[:2000]
    assert count(session, RequestVehicle) == len(vins)
