"""Decision → sealed letter → verification by every path → revocation and supersession."""

from __future__ import annotations

import hashlib
import io
import json
import re

import pytest
from sqlalchemy import func, select

from issuer.models import Letter
from issuer.services.keys import rotate_key

NUMBER = re.compile(r"^[A-Z0-9-]+-2026-\d{6}$")


def multipart(pdf: bytes, field: str = "file") -> tuple[bytes, str]:
    """A multipart body built here: werkzeug's test builder spools large files to a temporary
    file it never closes, which pytest (rightly) reports."""
    boundary = "issuer-test-boundary-7f3a"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="letter.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + pdf
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _verify_upload(client, pdf: bytes, path: str = "/api/v1/verify"):
    body, content_type = multipart(pdf)
    return client.post(path, data=body, content_type=content_type)


def test_approving_all_eligible_issues_a_letter_with_a_readable_unique_number(client, world, issue):
    number, letter, pdf = issue()

    assert NUMBER.match(number)
    assert number.startswith(f"{world.manufacturer.code}-2026-")
    assert letter["status"] == "valid"
    assert sorted(v["vin"] for v in letter["vehicles"]) == sorted(world.vins)
    assert letter["outlets"]["KZ"][0]["code"] == "KZ-1"
    assert re.fullmatch(r"[A-Z0-9-]+", letter["verification_code"])
    assert pdf.startswith(b"%PDF-")
    assert hashlib.sha256(pdf).hexdigest() == letter["pdf_sha256"]


def test_letter_pdf_is_accepted_by_pyhanko_trusting_only_the_published_certificate(client, world, issue):
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    _number, letter, pdf = issue()
    keys = client.get("/.well-known/letter-keys.json").json["keys"]
    published = next(k for k in keys if k["kid"] == letter["seal_key_id"])
    _, _, der = pem.unarmor(published["certificate"].encode())
    context = ValidationContext(trust_roots=[asn1_x509.Certificate.load(der)])

    reader = PdfFileReader(io.BytesIO(pdf))
    assert len(reader.embedded_signatures) == 1
    status = validate_pdf_signature(reader.embedded_signatures[0], context)

    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.coverage.name == "ENTIRE_FILE"


def test_verification_by_number_and_code_reports_valid_and_wrong_code_looks_like_unknown_number(client, world, issue):
    number, letter, _ = issue()
    good = client.get(f"/api/v1/verify/{number}?code={letter['verification_code']}")
    wrong_code = client.get(f"/api/v1/verify/{number}?code=AAAA-AAAA-AAAA-AAAA")
    unknown = client.get(f"/api/v1/verify/{world.manufacturer.code}-2026-999999?code={letter['verification_code']}")

    assert good.status_code == 200
    assert good.json["status"] == "valid"
    assert {v["vin"] for v in good.json["letter"]["vehicles"]} == set(world.vins)
    assert wrong_code.status_code == unknown.status_code == 404
    assert wrong_code.data == unknown.data


def test_verification_code_is_accepted_in_lower_case_and_without_dashes(client, issue):
    number, letter, _ = issue()
    relaxed = letter["verification_code"].replace("-", "").lower()
    assert client.get(f"/api/v1/verify/{number}?code={relaxed}").status_code == 200


def test_uploaded_letter_is_authentic_and_names_its_key_and_signer(client, world, issue):
    number, letter, pdf = issue()
    answer = _verify_upload(client, pdf)

    assert answer.status_code == 200
    body = answer.json
    assert body["authentic"] is True
    assert body["letter_number"] == number
    assert body["status"] == "valid"
    assert body["signature"]["valid"]
    assert body["signature"]["intact"]
    assert body["signature"]["covers_whole_file"]
    assert body["signature"]["key_id"] == letter["seal_key_id"]
    assert body["signature"]["key_belongs_to_manufacturer"]
    assert body["signature"]["key_valid_at_signing"]
    assert world.manufacturer.uscc in body["signature"]["signer"]
    assert body["reasons"] == []


@pytest.mark.parametrize("where", [0.02, 0.3, 0.5, 0.7, 0.98])
def test_a_one_byte_change_makes_the_upload_not_authentic(client, issue, where):
    _, _, pdf = issue()
    offset = int(len(pdf) * where)
    tampered = bytearray(pdf)
    tampered[offset] = (tampered[offset] + 1) % 256
    body = _verify_upload(client, bytes(tampered)).json
    assert body["authentic"] is False
    assert body["reasons"]


def test_bytes_appended_after_the_seal_make_the_upload_not_authentic(client, issue):
    _, _, pdf = issue()
    body = _verify_upload(client, pdf + b"\n% appended\n").json
    assert body["authentic"] is False
    assert "CHANGED_AFTER_SEALING" in body["reasons"] or "DIFFERENT_FROM_ISSUED" in body["reasons"]


def test_a_pdf_that_is_not_a_letter_is_not_authentic_and_says_why(client):
    import weasyprint

    plain = weasyprint.HTML(string="<p>not a letter</p>").write_pdf()
    body = _verify_upload(client, plain).json
    assert body["authentic"] is False
    assert "NOT_SIGNED" in body["reasons"]
    garbage = _verify_upload(client, b"hello").json
    assert garbage["authentic"] is False


def test_revocation_is_reported_by_every_verification_path(client, world, issue, tmp_path, cli):
    number, letter, pdf = issue()
    revoked = client.post(
        f"/api/v1/letters/{number}/revoke",
        json={"reason": "VIN typo in contract"},
        headers=world.auth(world.aftersales_token),
    )
    assert revoked.status_code == 200
    assert revoked.json["status"] == "revoked"
    assert revoked.json["revocation"]["reason"] == "VIN typo in contract"

    by_code = client.get(f"/api/v1/verify/{number}?code={letter['verification_code']}").json
    assert by_code["status"] == "revoked"
    upload = _verify_upload(client, pdf).json
    assert upload["status"] == "revoked"
    assert "REVOKED" in upload["reasons"]
    page = client.get(f"/verify/{number}?code={letter['verification_code']}")
    assert page.status_code == 200
    assert "已撤销" in page.get_data(as_text=True)
    again = client.post(
        f"/api/v1/letters/{number}/revoke", json={"reason": "twice"}, headers=world.auth(world.aftersales_token)
    )
    assert again.status_code == 409


def test_a_vin_in_a_valid_letter_is_already_covered_until_that_letter_is_revoked(client, world, issue):
    number, _, _ = issue(world.vins[:2])
    body = world.request_body(world.vins[:1])
    first = client.post("/api/v1/precheck", json=body, headers=world.auth(world.exporter_token)).json
    assert "ALREADY_COVERED" in first["vehicles"][0]["reasons"]

    client.post(
        f"/api/v1/letters/{number}/revoke", json={"reason": "wrong buyer"}, headers=world.auth(world.admin_token)
    )
    after = client.post("/api/v1/precheck", json=body, headers=world.auth(world.exporter_token)).json
    assert after["vehicles"][0]["verdict"] == "eligible"


def test_a_correction_supersedes_the_old_letter_and_takes_over_its_vins(client, world, issue):
    old_number, old_letter, old_pdf = issue(world.vins[:3])
    new_number, new_letter, _ = issue(world.vins[:3], supersedes=old_number)

    assert new_letter["supersedes"] == old_number
    old = client.get(f"/api/v1/verify/{old_number}?code={old_letter['verification_code']}").json
    assert old["status"] == "superseded"
    assert old["letter"]["superseded_by"] == new_number
    assert "SUPERSEDED" in _verify_upload(client, old_pdf).json["reasons"]


def test_letters_of_a_rotated_key_still_verify_and_new_letters_use_the_new_key(client, world, issue, session, settings):
    _first_number, first, first_pdf = issue(world.vins[:2])
    rotate_key(
        session=session,
        manufacturer_code=world.manufacturer.code,
        keys_dir=settings.keys_dir,
        passphrase=settings.seal_passphrase,
    )
    _second_number, second, second_pdf = issue(world.vins[2:4])

    assert first["seal_key_id"] != second["seal_key_id"]
    for pdf, letter in ((first_pdf, first), (second_pdf, second)):
        body = _verify_upload(client, pdf).json
        assert body["authentic"] is True
        assert body["signature"]["key_id"] == letter["seal_key_id"]
    kids = {k["kid"] for k in client.get("/.well-known/letter-keys.json").json["keys"]}
    assert {first["seal_key_id"], second["seal_key_id"]} <= kids


def test_partial_decision_approves_some_and_rejects_others_with_reasons(client, world, session):
    filed = client.post(
        "/api/v1/requests", json=world.request_body(world.vins[:3]), headers=world.auth(world.exporter_token)
    ).json
    decided = client.post(
        f"/api/v1/requests/{filed['id']}/decision",
        json={
            "approve": [world.vins[0].lower()],
            "reject": [{"vin": world.vins[1], "reason": "not sold by us"}],
            "note": "partial",
        },
        headers=world.auth(world.aftersales_token),
    )
    assert decided.status_code == 200, decided.json
    letter = client.get(
        f"/api/v1/letters/{decided.json['letter_number']}", headers=world.auth(world.exporter_token)
    ).json
    assert [v["vin"] for v in letter["vehicles"]] == [world.vins[0]]
    stored = client.get(f"/api/v1/requests/{filed['id']}", headers=world.auth(world.exporter_token)).json
    decisions = {v["vin"]: (v["decision"], v["decision_reason"]) for v in stored["vehicles"]}
    assert decisions[world.vins[0]] == ("approved", None)
    assert decisions[world.vins[1]] == ("rejected", "not sold by us")
    assert decisions[world.vins[2]][0] == "not_approved"
    assert stored["status"] == "approved"


def test_a_decision_cannot_approve_a_refused_vehicle_and_changes_nothing(client, world, session):
    body = world.request_body([*world.vins[:1], "LGXC74C43S0123456"])
    filed = client.post("/api/v1/requests", json=body, headers=world.auth(world.exporter_token)).json
    letters_before = session.scalar(select(func.count()).select_from(Letter))
    answer = client.post(
        f"/api/v1/requests/{filed['id']}/decision",
        json={"approve": ["LGXC74C43S0123456"]},
        headers=world.auth(world.aftersales_token),
    )
    assert answer.status_code == 422
    assert answer.json["error"]["details"][0]["vin"] == "LGXC74C43S0123456"
    assert session.scalar(select(func.count()).select_from(Letter)) == letters_before
    stored = client.get(f"/api/v1/requests/{filed['id']}", headers=world.auth(world.exporter_token)).json
    assert stored["status"] == "submitted"


def test_a_request_is_decided_once(client, world):
    filed = client.post(
        "/api/v1/requests", json=world.request_body(world.vins[:1]), headers=world.auth(world.exporter_token)
    ).json
    url = f"/api/v1/requests/{filed['id']}/decision"
    assert (
        client.post(url, json={"approve": "all_eligible"}, headers=world.auth(world.aftersales_token)).status_code
        == 200
    )
    assert (
        client.post(url, json={"approve": "all_eligible"}, headers=world.auth(world.aftersales_token)).status_code
        == 409
    )


def test_only_the_addressed_aftersales_team_may_decide_and_only_parties_see_the_letter(client, world, issue):
    filed = client.post(
        "/api/v1/requests", json=world.request_body(world.vins[:1]), headers=world.auth(world.exporter_token)
    ).json
    url = f"/api/v1/requests/{filed['id']}/decision"
    assert (
        client.post(url, json={"approve": "all_eligible"}, headers=world.auth(world.exporter_token)).status_code == 403
    )
    assert (
        client.post(url, json={"approve": "all_eligible"}, headers=world.auth(world.reviewer_token)).status_code == 403
    )
    assert (
        client.post(url, json={"approve": "all_eligible"}, headers=world.auth(world.other_aftersales_token)).status_code
        == 404
    )
    assert client.post(url, json={"approve": "all_eligible"}).status_code == 401

    number, _, _ = issue(world.vins[1:2])
    for token in (world.other_exporter_token, world.other_aftersales_token):
        assert client.get(f"/api/v1/letters/{number}", headers=world.auth(token)).status_code == 404
        assert client.get(f"/api/v1/letters/{number}/pdf", headers=world.auth(token)).status_code == 404
    assert client.get(f"/api/v1/letters/{number}", headers=world.auth(world.reviewer_token)).status_code == 403
    assert (
        client.post(
            f"/api/v1/letters/{number}/revoke", json={"reason": "x"}, headers=world.auth(world.exporter_token)
        ).status_code
        == 403
    )


def test_the_pdf_download_is_byte_for_byte_the_issued_file(client, world, issue, session):
    number, _, pdf = issue(world.vins[:1])
    stored = session.scalar(select(Letter).where(Letter.number == number))
    assert stored.pdf == pdf
    assert stored.pdf_sha256 == hashlib.sha256(pdf).hexdigest()


def test_the_embedded_letter_data_lists_every_vehicle_and_outlet(client, world, issue):
    from pyhanko.pdf_utils.reader import PdfFileReader

    number, _letter, pdf = issue()
    reader = PdfFileReader(io.BytesIO(pdf))
    names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    spec = names[1].get_object()
    data = json.loads(spec["/EF"]["/F"].get_object().data)
    assert data["number"] == number
    assert sorted(v["vin"] for d in data["destinations"] for v in d["vehicles"]) == sorted(world.vins)


def test_offline_cli_verify_accepts_the_letter_with_a_saved_key_set_and_refuses_a_tampered_copy(
    client, issue, cli, tmp_path
):
    _, _, pdf = issue()
    keys_file = tmp_path / "letter-keys.json"
    keys_file.write_text(client.get("/.well-known/letter-keys.json").get_data(as_text=True), encoding="utf-8")
    good = tmp_path / "good.pdf"
    good.write_bytes(pdf)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(pdf + b"%% appended")

    ok = cli.invoke(args=["verify", str(good), "--keys", str(keys_file)])
    assert ok.exit_code == 0, ok.output
    assert "AUTHENTIC: YES" in ok.output
    refused = cli.invoke(args=["verify", str(bad), "--keys", str(keys_file)])
    assert refused.exit_code == 1
    assert "AUTHENTIC: NO" in refused.output
    missing = cli.invoke(args=["verify", str(tmp_path / "nope.pdf")])
    assert missing.exit_code == 2
