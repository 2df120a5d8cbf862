"""What the issued PDF prints, end to end through the API: every VIN, the parties, the outlets
as they were that day, user text as text, and the uploaded seal image."""

from __future__ import annotations

import io
import subprocess

from PIL import Image

from issuer.services.organisations import set_seal_image
from issuer.services.outlets import update_outlet
from tests import factories


def pdf_text(pdf: bytes, tmp_path) -> str:
    """The PDF's text with all whitespace removed (table cells wrap long names)."""
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return "".join(text.split())


def squeezed(text: str) -> str:
    return "".join(text.split())


def test_the_pdf_prints_every_vin_the_issuer_the_exporter_and_every_outlet(client, world, issue, tmp_path):
    _, letter, pdf = issue()
    text = pdf_text(pdf, tmp_path)
    for vin in world.vins:
        assert vin in text
    assert squeezed(world.manufacturer.name) in text
    assert world.manufacturer.uscc in text
    assert squeezed(world.exporter.name) in text
    for outlet in letter["outlets"]["KZ"]:
        assert squeezed(outlet["name"]) in text
        assert squeezed(outlet["provider"]) in text
        assert squeezed(outlet["address"]) in text
    assert letter["verification_code"] in text


def test_markup_in_an_outlet_name_is_printed_as_text_and_nothing_is_fetched(client, world, session, issue, tmp_path):
    hostile = '<img src="file:///etc/passwd">'
    update_outlet(
        session=session,
        manufacturer=world.manufacturer,
        code="KZ-1",
        values={"name": hostile, "provider": "<script>alert(1)</script> LLP"},
    )
    _, _, pdf = issue(world.vins[:1])
    text = pdf_text(pdf, tmp_path)
    assert squeezed('<img src="file:///etc/passwd">') in text
    assert squeezed("<script>alert(1)</script> LLP") in text
    assert b"root:x:0:0" not in pdf


def test_an_outlet_edited_after_issue_does_not_change_the_issued_letter(client, world, session, issue):
    number, before, _ = issue(world.vins[:1])
    update_outlet(
        session=session,
        manufacturer=world.manufacturer,
        code="KZ-1",
        values={"name": "Renamed Service", "address": "99 New Street"},
    )
    after = client.get(f"/api/v1/letters/{number}", headers=world.auth(world.exporter_token)).json
    assert after["outlets"] == before["outlets"]
    assert after["outlets"]["KZ"][0]["name"] != "Renamed Service"


def test_the_uploaded_seal_image_is_printed_on_new_letters(client, world, session, issue, tmp_path):
    _, _, without = issue(world.vins[:1])
    buffer = io.BytesIO()
    Image.new("RGBA", (240, 240), (200, 0, 0, 180)).save(buffer, format="PNG")
    set_seal_image(session=session, manufacturer_code=world.manufacturer.code, image=buffer.getvalue())
    _, _, with_seal = issue(world.vins[1:2])

    def images(pdf: bytes) -> int:
        path = tmp_path / "x.pdf"
        path.write_bytes(pdf)
        listing = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True).stdout
        return sum(1 for line in listing.splitlines()[2:] if " 240 " in line)

    assert images(without) == 0
    assert images(with_seal) >= 1


def test_a_superseded_letter_says_so_on_its_verification_page(client, world, issue):
    old_number, old, _ = issue(world.vins[:1])
    new_number, _, _ = issue(world.vins[:1], supersedes=old_number)
    page = client.get(f"/verify/{old_number}?code={old['verification_code']}").get_data(as_text=True)
    assert "已被替代" in page
    assert new_number in page


def test_verification_pages_answer_identically_for_an_unknown_number_and_a_wrong_code(client, world, issue):
    number, letter, _ = issue(world.vins[:1])
    wrong = client.get(f"/verify/{number}?code=AAAA-BBBB-CCCC-DDDD")
    unknown = client.get(f"/verify/{world.manufacturer.code}-2026-999999?code={letter['verification_code']}")
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.get_data(as_text=True).replace(number, "N") == unknown.get_data(as_text=True).replace(
        f"{world.manufacturer.code}-2026-999999", "N"
    )


def test_a_seal_image_that_is_not_a_png_is_refused(session, world):
    import pytest

    from issuer.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="PNG"):
        set_seal_image(session=session, manufacturer_code=world.manufacturer.code, image=b"GIF89a....")
    with pytest.raises(ValidationFailed, match="readable"):
        set_seal_image(
            session=session, manufacturer_code=world.manufacturer.code, image=b"\x89PNG\r\n\x1a\n" + b"garbage" * 10
        )


def test_issuing_without_a_seal_key_is_refused_and_leaves_the_request_undecided(client, world, session):
    keyless = factories.manufacturer(session, wmis=("LFV",))
    vins = factories.random_vins("LFV", 1, seed=3)
    factories.register(session, keyless, vins)
    factories.outlet(session, keyless, country="KZ")
    staff = factories.token(session, factories.user(session, "aftersales", manufacturer=keyless))
    body = world.request_body(vins)
    body["manufacturer"] = keyless.code
    filed = client.post("/api/v1/requests", json=body, headers=world.auth(world.exporter_token)).json
    answer = client.post(
        f"/api/v1/requests/{filed['id']}/decision", json={"approve": "all_eligible"}, headers=world.auth(staff)
    )
    assert answer.status_code == 409
    assert "seal key" in answer.json["error"]["message"]
    stored = client.get(f"/api/v1/requests/{filed['id']}", headers=world.auth(world.exporter_token)).json
    assert stored["status"] == "submitted"
