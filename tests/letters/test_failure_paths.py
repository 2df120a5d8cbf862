"""What happens when issuance or verification meets bad input: clear errors, nothing stuck,
nothing revealed."""

from __future__ import annotations

import datetime as dt
import json

import weasyprint
from sqlalchemy import func, select

from issuer import clock
from issuer.models import CoveredVin, Letter, LetterRequest
from issuer.sealing.keys import generate_material
from issuer.sealing.signer import PadesSealer, SigningKey
from issuer.services.demo import load_demo
from issuer.services.keys import rotate_key
from tests.letters.test_issue_and_verify import _verify_upload


def _forged(number: str) -> bytes:
    material = generate_material(name="伪造公司", uscc="91310000MA1FL0XW94", now=clock.now_utc())
    key = SigningKey(kid="FORGED-1", private_key=material.private_key, certificate=material.certificate)
    return PadesSealer().seal(
        weasyprint.HTML(string="<p>forged</p>").write_pdf(),
        key=key,
        attachment=json.dumps({"number": number}).encode(),
        attachment_name="letter.json",
        signer_name="x",
        reason="x",
        location="x",
        signing_time=clock.now_utc(),
    )


def test_a_forged_file_naming_a_real_number_learns_nothing_about_that_letter(client, issue):
    number, letter, _ = issue()
    body = _verify_upload(client, _forged(number)).json
    assert body["authentic"] is False
    assert body["letter"] is None
    assert body["status"] is None
    assert "UNKNOWN_KEY" in body["reasons"]
    assert letter["verification_code"] not in json.dumps(body)


def _registered_as(session, vin: str, model: str) -> None:
    """The registry says so too, so the vehicle is eligible and only printing can fail."""
    from sqlalchemy import update

    from issuer.models import RegisteredVehicle

    session.execute(update(RegisteredVehicle).where(RegisteredVehicle.vin == vin).values(model=model))
    session.commit()


def test_a_letter_that_cannot_be_printed_is_refused_clearly_and_leaves_nothing_blocked(client, world, session):
    _registered_as(session, world.vins[0], "E1 \U000f0000")
    body = world.request_body(world.vins[:1])
    body["vehicles"][0]["model"] = "E1 \U000f0000"  # a code point no installed font has
    filed = client.post("/api/v1/requests", json=body, headers=world.auth(world.exporter_token)).json
    covered_before = session.scalar(select(func.count()).select_from(CoveredVin))

    answer = client.post(
        f"/api/v1/requests/{filed['id']}/decision",
        json={"approve": "all_eligible"},
        headers=world.auth(world.aftersales_token),
    )

    assert answer.status_code == 422
    assert "cannot be printed" in answer.json["error"]["message"]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Letter).where(Letter.status == "pending")) == 0
    assert session.scalar(select(func.count()).select_from(CoveredVin)) == covered_before
    assert session.get(LetterRequest, filed["id"]).status == "submitted"
    again = client.post(
        "/api/v1/precheck", json=world.request_body(world.vins[:1]), headers=world.auth(world.exporter_token)
    ).json
    assert "ALREADY_COVERED" not in again["vehicles"][0]["reasons"]


def test_a_failed_correction_gives_the_old_letter_its_vins_back(client, world, issue, session):
    old_number, _, _ = issue(world.vins[:1])
    _registered_as(session, world.vins[0], "E1 \U000f0000")
    body = world.request_body(world.vins[:1], supersedes=old_number)
    body["vehicles"][0]["brand"] = "Example"
    body["vehicles"][0]["model"] = "E1 \U000f0000"
    filed = client.post("/api/v1/requests", json=body, headers=world.auth(world.exporter_token)).json
    answer = client.post(
        f"/api/v1/requests/{filed['id']}/decision",
        json={"approve": "all_eligible"},
        headers=world.auth(world.aftersales_token),
    )
    assert answer.status_code == 422
    session.expire_all()
    old = session.scalar(select(Letter).where(Letter.number == old_number))
    assert old.status == "valid"
    assert session.scalar(select(CoveredVin.letter_id).where(CoveredVin.vin == world.vins[0])) == old.id


def test_nul_characters_in_decision_and_revocation_texts_are_refused(client, world, issue):
    filed = client.post(
        "/api/v1/requests", json=world.request_body(world.vins[:2]), headers=world.auth(world.exporter_token)
    ).json
    answer = client.post(
        f"/api/v1/requests/{filed['id']}/decision",
        json={"approve": [world.vins[0]], "reject": [{"vin": world.vins[1], "reason": "bad\u0000"}]},
        headers=world.auth(world.aftersales_token),
    )
    assert answer.status_code == 422
    number, _, _ = issue(world.vins[2:3])
    revoke = client.post(
        f"/api/v1/letters/{number}/revoke", json={"reason": "x\u0000y"}, headers=world.auth(world.aftersales_token)
    )
    assert revoke.status_code == 422


def test_revocation_shows_on_the_html_upload_page_and_in_the_cli_with_the_local_database(
    client, world, issue, cli, tmp_path
):
    number, _, pdf = issue(world.vins[:1])
    client.post(
        f"/api/v1/letters/{number}/revoke",
        json={"reason": "sold elsewhere"},
        headers=world.auth(world.aftersales_token),
    )
    page = _verify_upload(client, pdf, path="/verify")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "revoked" in html
    assert number in html
    path = tmp_path / "l.pdf"
    path.write_bytes(pdf)
    result = cli.invoke(args=["verify", str(path)])
    assert "status:               revoked" in result.output
    assert result.exit_code == 0  # still the authentic file; its status is reported beside it


def test_cli_verify_catches_a_one_byte_change_and_a_rotated_key_letter_still_verifies(
    client, world, issue, cli, tmp_path, session, settings
):
    _, _, old_pdf = issue(world.vins[:1])
    rotate_key(
        session=session,
        manufacturer_code=world.manufacturer.code,
        keys_dir=settings.keys_dir,
        passphrase=settings.seal_passphrase,
    )
    _, new_letter, new_pdf = issue(world.vins[1:2])
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(client.get("/.well-known/letter-keys.json").get_data(as_text=True), encoding="utf-8")
    for name, pdf in (("old", old_pdf), ("new", new_pdf)):
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(pdf)
        assert cli.invoke(args=["verify", str(path), "--keys", str(keys_file)]).exit_code == 0
    flipped = bytearray(new_pdf)
    flipped[len(flipped) // 3] ^= 0x01
    path = tmp_path / "flipped.pdf"
    path.write_bytes(bytes(flipped))
    assert cli.invoke(args=["verify", str(path), "--keys", str(keys_file)]).exit_code == 1
    by_code = client.get(f"/api/v1/verify/{new_letter['number']}?code={new_letter['verification_code']}").json
    assert by_code["status"] == "valid"
    assert by_code["letter"]["seal_key_id"] == new_letter["seal_key_id"]


def test_public_answers_do_not_name_the_staff_member_who_revoked(client, world, issue):
    number, letter, _ = issue(world.vins[:1])
    client.post(f"/api/v1/letters/{number}/revoke", json={"reason": "typo"}, headers=world.auth(world.aftersales_token))
    public = client.get(f"/api/v1/verify/{number}?code={letter['verification_code']}").json
    assert public["letter"]["revocation"]["reason"] == "typo"
    assert "revoked_by" not in public["letter"]["revocation"]


def test_demo_data_gives_every_issuing_manufacturer_a_seal_key(session, settings):
    load_demo(session=session, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase)
    from issuer.models import Manufacturer, SealKey

    issuing = session.scalars(select(Manufacturer).where(Manufacturer.type == "vehicle_manufacturer")).all()
    assert issuing
    for manufacturer in issuing:
        assert session.scalar(select(SealKey).where(SealKey.manufacturer_id == manufacturer.id)) is not None


def test_an_export_transfer_date_after_today_is_refused_through_the_api(client, world):
    body = world.request_body(world.vins[:1])
    body["vehicles"][0]["export_transfer_date"] = (dt.date(2026, 9, 15) + dt.timedelta(days=1)).isoformat()
    answer = client.post("/api/v1/precheck", json=body, headers=world.auth(world.exporter_token)).json
    assert "EXPORT_TRANSFER_DATE_INVALID" in answer["vehicles"][0]["reasons"]
    assert answer["vehicles"][0]["verdict"] == "refused"


def test_approving_more_vehicles_than_one_letter_holds_is_refused_before_anything_is_written(
    client, world, session, monkeypatch
):
    from issuer.services import letters

    monkeypatch.setattr(letters, "MAX_LETTER_VEHICLES", 2)
    filed = client.post(
        "/api/v1/requests", json=world.request_body(world.vins[:3]), headers=world.auth(world.exporter_token)
    ).json
    answer = client.post(
        f"/api/v1/requests/{filed['id']}/decision",
        json={"approve": "all_eligible"},
        headers=world.auth(world.aftersales_token),
    )
    assert answer.status_code == 422
    assert "at most 2 vehicles" in answer.json["error"]["message"]
    assert session.get(LetterRequest, filed["id"]).status == "submitted"
