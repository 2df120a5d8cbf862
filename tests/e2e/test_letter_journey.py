"""The acceptance journey of a letter, clicked through the real pages in Chromium.

An exporter prechecks a spreadsheet holding vehicles of two manufacturers, reads the verdicts
and sends manufacturer A its part; A's after-sales approves some vehicles and rejects others
with a reason; the exporter downloads the sealed PDF; a reviewer with no account verifies it by
uploading it and by opening the address its QR code encodes; after-sales revokes the letter and
both checks then say so. Elements are found by their labels and roles, as a screen reader
would find them.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import openpyxl
from playwright.sync_api import BrowserContext, Page, expect

from issuer.domain.eligibility import REASON_TEXT, ReasonCode, letter_not_needed_from
from tests.e2e.support import E2E, REGISTERED_ON, LiveServer, World, sign_in

pytestmark = E2E

COLUMNS = ["vin", "brand", "model", "registration_date", "destination", "export_transfer_date"]
NO_OUTLET = REASON_TEXT[ReasonCode.NO_OUTLET_IN_DESTINATION][1]


def write_sheet(path: Path, rows: list[tuple[str, str]]) -> Path:
    """An XLSX as an exporter's clerk fills it: the template's header, one vehicle per row, dates as
    date cells."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "vehicles"
    sheet.append(COLUMNS)
    for vin, destination in rows:
        sheet.append([vin, "Example", "E1", REGISTERED_ON, destination, None])
    book.save(path)
    return path


def verification_url_in(pdf: Path) -> str:
    """The verification address printed on page 1 (the one its QR code encodes)."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    match = re.search(r"https?://\S+/verify/\S+", text)
    assert match, f"no verification address printed on the letter:\n{text[:2000]}"
    return match.group(0)


def fact(page: Page, term: str):  # type: ignore[no-untyped-def]
    """The value beside a term of the page's facts list (<dl class="facts">)."""
    return page.locator("dl.facts dt", has_text=term).first.locator("xpath=following-sibling::dd[1]")


def upload_for_verification(page: Page, pdf: Path) -> None:
    page.goto("/verify")
    page.get_by_label("Letter PDF").set_input_files(str(pdf))
    page.get_by_role("button", name="Upload and verify").click()
    expect(page.get_by_role("heading", name="PDF verification result")).to_be_visible()


def test_a_letter_from_spreadsheet_to_revocation(
    live_server: LiveServer,
    world: World,
    new_context: Callable[..., BrowserContext],
    shoot: Callable[[Page, str], Path],
    tmp_path: Path,
) -> None:
    eligible = world.take_vins(4)
    refused = world.take_vins(1)[0]  # to Thailand, where the manufacturer has no outlet
    others = world.take_vins(2, other=True)
    maker, other_maker = world.maker, world.other_maker
    sheet = write_sheet(
        tmp_path / "vehicles.xlsx",
        [
            (eligible[0], "KZ"),
            (others[0], "KZ"),
            (eligible[1], "KZ"),
            (refused, "TH"),
            (eligible[2], "KZ"),
            (others[1], "KZ"),
            (eligible[3], "KZ"),
        ],
    )

    # -- the exporter prechecks the spreadsheet ---------------------------------------------------
    exporter = new_context().new_page()
    sign_in(exporter, world.exporter_user)
    exporter.get_by_role("navigation", name="Main").get_by_role("link", name="Precheck").click()
    expect(exporter.get_by_role("heading", level=1)).to_have_text("Which vehicles need a letter?")
    shoot(exporter, "precheck")
    exporter.get_by_label("Or upload a CSV or XLSX file").set_input_files(str(sheet))
    exporter.get_by_role("button", name="Check the vehicles").click()
    expect(exporter.get_by_role("heading", name="7 vehicles checked")).to_be_visible()
    shoot(exporter, "verdicts")

    # Split by manufacturer: one part each, each with its own table and send button.
    part_a = exporter.get_by_role("region", name=f"{maker.name_en} ({maker.code})")
    part_b = exporter.get_by_role("region", name=f"{other_maker.name_en} ({other_maker.code})")
    expect(part_a.get_by_role("table", name=f"Verdict per vehicle for {maker.name_en}")).to_be_visible()
    expect(part_b.get_by_role("table", name=f"Verdict per vehicle for {other_maker.name_en}")).to_be_visible()
    expect(part_a.get_by_role("row").filter(has_text=re.compile("|".join([*eligible, refused])))).to_have_count(5)
    expect(part_b.get_by_role("row").filter(has_text=re.compile("|".join(others)))).to_have_count(2)
    until = letter_not_needed_from(REGISTERED_ON).isoformat()
    for vin in eligible:
        row = part_a.get_by_role("row").filter(has_text=vin)
        expect(row).to_contain_text("Letter can be issued")
        expect(row).to_contain_text(f"No letter needed from {until}")
    refused_row = part_a.get_by_role("row").filter(has_text=refused)
    expect(refused_row).to_contain_text("Refused")
    expect(refused_row).to_contain_text(NO_OUTLET)  # the reason in plain words
    expect(part_b.get_by_role("button", name=f"Send request to {other_maker.name_en}")).to_be_visible()

    part_a.get_by_role("button", name=f"Send request to {maker.name_en}").click()
    expect(exporter).to_have_url(re.compile(r"/requests/\d+$"))
    request_path = re.sub(r"^https?://[^/]+", "", exporter.url)
    expect(exporter.locator(".flashes")).to_contain_text(f"sent to {maker.code} with 5 vehicles")
    expect(exporter.get_by_role("heading", level=1)).to_contain_text("Submitted")
    shoot(exporter, "request-sent")

    # -- after-sales of A reviews it: approves some, rejects others with a reason ----------------
    aftersales = new_context().new_page()
    sign_in(aftersales, world.aftersales)
    aftersales.get_by_role("navigation", name="Main").get_by_role("link", name="Requests").click()
    expect(aftersales.get_by_role("heading", level=1)).to_have_text("Review queue")
    shoot(aftersales, "review-queue")
    request_number = request_path.rsplit("/", 1)[1]
    aftersales.get_by_role("link", name=f"#{request_number}", exact=True).click()
    expect(aftersales).to_have_url(re.compile(re.escape(request_path) + "$"))
    outlets = aftersales.get_by_role("region", name="Outlets that would be printed")
    expect(outlets).to_contain_text("KZ-ALMATY-1")
    expect(outlets).to_contain_text("KZ-ASTANA-1")
    expect(aftersales.get_by_label(f"Approve {refused}")).to_be_disabled()  # refused today
    shoot(aftersales, "request-review")

    aftersales.get_by_label(f"Approve {eligible[0]}").check()
    aftersales.get_by_label(f"Approve {eligible[2]}").check()
    aftersales.get_by_label(f"Reject {eligible[1]}").check()
    aftersales.get_by_label(f"Reject {refused}").check()
    aftersales.get_by_label("Reason for rejecting").fill("Odometer reading does not match the export contract")
    aftersales.get_by_role("button", name="Approve selected").click()
    expect(aftersales).to_have_url(re.compile(r"/letters/[A-Z0-9-]+$"))
    number = aftersales.url.rsplit("/", 1)[1]
    assert number.startswith(f"{maker.code}-2026-"), number
    expect(aftersales.locator(".flashes")).to_contain_text(f"Letter {number} issued for 2 vehicle(s)")
    shoot(aftersales, "letter-issued")

    # -- the exporter follows the status and downloads the sealed PDF ----------------------------
    exporter.goto(request_path)
    expect(exporter.get_by_role("heading", level=1)).to_contain_text("Approved")
    vehicles = exporter.get_by_role("region", name="Vehicles")
    expect(vehicles.get_by_role("row").filter(has_text=eligible[1])).to_contain_text(
        "Odometer reading does not match the export contract"
    )
    expect(vehicles.get_by_role("row").filter(has_text=eligible[3])).to_contain_text("Not approved")
    shoot(exporter, "request-decided")
    exporter.get_by_role("navigation", name="Main").get_by_role("link", name="Letters").click()
    exporter.get_by_role("link", name=number, exact=True).click()
    expect(exporter.get_by_role("heading", level=1)).to_contain_text(number)
    expect(exporter.get_by_role("heading", level=1)).to_contain_text("Valid")
    shoot(exporter, "letter")
    with exporter.expect_download() as download_info:
        exporter.get_by_role("link", name="Download the sealed PDF").click()
    pdf = tmp_path / "letter.pdf"
    download_info.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF-"), "the download is not a PDF"
    url = verification_url_in(pdf)
    assert url.startswith(live_server.url + "/verify/"), f"the QR code's address is not this server's: {url}"
    qr_link = exporter.get_by_role("link", name="QR code of the verification address")
    expect(qr_link).to_have_attribute("href", url)  # the page's QR code says what the letter says

    # -- nobody of another tenant sees the request or the letter --------------------------------
    for outsider in (world.other_aftersales, world.other_exporter_user):
        other = new_context().new_page()
        sign_in(other, outsider)
        for path in (request_path, f"/letters/{number}", f"/letters/{number}/pdf"):
            answer = other.goto(path)
            assert answer is not None
            assert answer.status == 404, f"{outsider.email} opened {path}: {answer.status}"
            expect(other.get_by_role("main")).not_to_contain_text(world.exporter.name)
        other.context.close()

    # -- a reviewer without an account verifies it: by upload and by the QR code's address -------
    reviewer = new_context().new_page()
    upload_for_verification(reviewer, pdf)
    expect(reviewer.get_by_text("Authentic: sealed by the manufacturer and unaltered")).to_be_visible()
    expect(fact(reviewer, "Number")).to_have_text(number)
    expect(fact(reviewer, "Status")).to_have_text("Valid")
    shoot(reviewer, "verify-upload-valid")
    reviewer.goto(url)
    expect(reviewer.get_by_role("heading", name="Verification result")).to_be_visible()
    expect(reviewer.get_by_role("status")).to_have_text("Valid")
    expect(reviewer.get_by_role("main")).to_contain_text(eligible[0])
    shoot(reviewer, "verify-qr-valid")

    # -- after-sales revokes it: a reason and a confirmation ------------------------------------
    aftersales.goto(f"/letters/{number}")
    aftersales.on("dialog", lambda dialog: dialog.accept())  # a confirm() before revoking, if asked
    aftersales.get_by_role("link", name="Revoke…").click()
    expect(aftersales.get_by_role("heading", level=1)).to_have_text(f"Revoke letter {number}")
    reason = "Issued on a forged registration certificate"
    aftersales.get_by_label("Reason for revoking").fill(reason)
    aftersales.get_by_role("button", name="Revoke the letter").click()  # not confirmed: refused
    confirm = aftersales.get_by_label("I understand this cannot be undone")
    expect(confirm).to_have_attribute("aria-invalid", "true")
    expect(confirm).to_have_accessible_description(
        re.compile("Tick this box to confirm that revoking cannot be undone.")
    )  # the error beside the box, tied to it
    expect(aftersales.get_by_label("Reason for revoking")).to_have_value(reason)  # what was typed is kept
    shoot(aftersales, "revoke-refused")
    confirm.check()
    aftersales.get_by_role("button", name="Revoke the letter").click()
    expect(aftersales).to_have_url(re.compile(re.escape(f"/letters/{number}") + "$"))
    expect(aftersales.get_by_role("heading", level=1)).to_contain_text("Revoked")
    shoot(aftersales, "letter-revoked")

    # -- and both checks say revoked ---------------------------------------------------------------
    upload_for_verification(reviewer, pdf)
    expect(reviewer.get_by_text("Authentic: sealed by the manufacturer and unaltered")).to_be_visible()
    expect(fact(reviewer, "Status")).to_have_text("Revoked")
    shoot(reviewer, "verify-upload-revoked")
    reviewer.goto(url)
    expect(reviewer.get_by_role("status")).to_have_text("Revoked")
    expect(reviewer.get_by_role("main")).to_contain_text(reason)
    shoot(reviewer, "verify-qr-revoked")
