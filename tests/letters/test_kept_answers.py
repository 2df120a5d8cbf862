"""What verification shows of a letter is made once per state of the letter and kept by the app
(issuer.web.verify.LetterAnswers): proved never stale and the same as a fresh answer.

Each test verifies a letter first (so an answer is kept), then changes the letter the way the
service does — revokes it, lets it expire, supersedes it — and checks that every path (by code
as JSON, the page, the upload) reports the change at once, on the same app. The kept answers are
compared field for field with an answer made from scratch the way the endpoint made it before
answers were kept (letter_body dumped with the output schema), and the limits of what is kept are
checked with lowered limits.
"""

from __future__ import annotations

import datetime as dt

from issuer import clock
from issuer.models import Letter
from issuer.schemas.letters import PublicLetterOutputSchema, VerifyByCodeOutputSchema
from issuer.web import verify as verify_module
from issuer.web.letters import letter_body
from tests.conftest import TODAY
from tests.letters.test_issue_and_verify import _verify_upload, multipart


def _issue(client, world, vins, **decision):  # type: ignore[no-untyped-def]
    filed = client.post("/api/v1/requests", json=world.request_body(vins), headers=world.auth(world.exporter_token))
    assert filed.status_code == 201, filed.json
    decided = client.post(
        f"/api/v1/requests/{filed.json['id']}/decision",
        json={"approve": "all_eligible", **decision},
        headers=world.auth(world.aftersales_token),
    )
    assert decided.status_code == 200, decided.json
    number = decided.json["letter_number"]
    letter = client.get(f"/api/v1/letters/{number}", headers=world.auth(world.exporter_token)).json
    pdf = client.get(f"/api/v1/letters/{number}/pdf", headers=world.auth(world.exporter_token)).data
    return number, letter["verification_code"], pdf


def _all_paths(client, number, code, pdf):  # type: ignore[no-untyped-def]
    by_code = client.get(f"/api/v1/verify/{number}?code={code}")
    page = client.get(f"/verify/{number}?code={code}")
    upload = _verify_upload(client, pdf)
    assert by_code.status_code == page.status_code == upload.status_code == 200
    return by_code.json, page.get_data(as_text=True), upload.json


def _fresh_answer(app, session, number):  # type: ignore[no-untyped-def]
    """The by-code answer made from scratch, as the endpoint made it before answers were kept."""
    with app.test_request_context():
        letter = session.query(Letter).filter_by(number=number).one()
        session.refresh(letter)
        body = letter_body(letter)
        return VerifyByCodeOutputSchema().dump({"status": body["status"], "letter": body})


def test_a_kept_answer_is_the_fresh_answer_and_is_reused(app, client, world, session) -> None:
    number, code, pdf = _issue(client, world, world.vins[:3])
    first = client.get(f"/api/v1/verify/{number}?code={code}")
    second = client.get(f"/api/v1/verify/{number}?code={code}")
    assert first.data == second.data
    assert first.json == _fresh_answer(app, session, number)
    assert first.headers["Content-Type"] == "application/json"
    upload = _verify_upload(client, pdf).json
    assert upload["letter"] == first.json["letter"]
    assert list(upload) == [
        "authentic",
        "letter_number",
        "status",
        "matches_issued_letter",
        "signature",
        "reasons",
        "messages",
        "letter",
    ]
    kept = app.extensions["issuer.letter_answers"]
    assert len(kept._kept) == 1  # the three answers were made from one kept letter
    assert client.get(f"/api/v1/verify/{number}?code=AAAA-AAAA-AAAA-AAAA").status_code == 404


def test_a_revocation_shows_at_once_on_every_path_after_a_kept_valid_answer(app, client, world, session) -> None:
    number, code, pdf = _issue(client, world, world.vins[:2])
    by_code, page, upload = _all_paths(client, number, code, pdf)
    assert by_code["status"] == upload["status"] == "valid"
    assert by_code["letter"]["revocation"] is None
    assert "已撤销" not in page

    revoked = client.post(
        f"/api/v1/letters/{number}/revoke", json={"reason": "wrong buyer"}, headers=world.auth(world.aftersales_token)
    )
    assert revoked.status_code == 200
    by_code, page, upload = _all_paths(client, number, code, pdf)
    assert by_code["status"] == upload["status"] == "revoked"
    assert by_code["letter"]["revocation"]["reason"] == "wrong buyer"
    assert "REVOKED" in upload["reasons"]
    assert "已撤销" in page
    assert by_code == _fresh_answer(app, session, number)


def test_a_letter_past_its_last_day_shows_expired_after_a_kept_valid_answer(app, client, world, session) -> None:
    last_day = TODAY + dt.timedelta(days=3)
    number, code, pdf = _issue(client, world, world.vins[:2], valid_until=last_day.isoformat())
    with clock.frozen(last_day):
        by_code, page, upload = _all_paths(client, number, code, pdf)
        assert by_code["status"] == upload["status"] == "valid"
        assert "已过期" not in page
    with clock.frozen(last_day + dt.timedelta(days=1)):
        by_code, page, upload = _all_paths(client, number, code, pdf)
        assert by_code["status"] == by_code["letter"]["status"] == upload["status"] == "expired"
        assert "已过期" in page
        assert "EXPIRED" in upload["reasons"]
        assert by_code == _fresh_answer(app, session, number)


def test_a_superseded_letter_names_its_successor_after_a_kept_valid_answer(app, client, world, session) -> None:
    old_number, code, pdf = _issue(client, world, world.vins[:3])
    by_code, _page, _upload = _all_paths(client, old_number, code, pdf)
    assert by_code["status"] == "valid"
    assert by_code["letter"]["superseded_by"] is None

    filed = client.post(
        "/api/v1/requests",
        json=world.request_body(world.vins[:3], supersedes=old_number),
        headers=world.auth(world.exporter_token),
    )
    decided = client.post(
        f"/api/v1/requests/{filed.json['id']}/decision",
        json={"approve": "all_eligible"},
        headers=world.auth(world.aftersales_token),
    )
    new_number = decided.json["letter_number"]
    by_code, page, upload = _all_paths(client, old_number, code, pdf)
    assert by_code["status"] == upload["status"] == "superseded"
    assert by_code["letter"]["superseded_by"] == new_number
    assert new_number in page
    assert by_code == _fresh_answer(app, session, old_number)


def test_what_is_kept_is_bounded_and_the_dropped_answers_are_made_again(
    app, client, world, session, monkeypatch
) -> None:
    monkeypatch.setattr(verify_module, "MAX_KEPT_LETTERS", 2)
    monkeypatch.setattr(verify_module, "MAX_KEPT_VEHICLES", 2)
    letters = [_issue(client, world, [vin]) for vin in world.vins[:3]]
    big_number, big_code, _ = _issue(client, world, world.vins[3:])  # 3 vehicles
    too_big = client.get(f"/api/v1/verify/{big_number}?code={big_code}")
    assert too_big.json == _fresh_answer(app, session, big_number)
    kept = app.extensions["issuer.letter_answers"]
    assert len(kept._kept) == 0  # bigger than the budget: made, not kept
    assert kept._vehicles == 0

    monkeypatch.setattr(verify_module, "MAX_KEPT_VEHICLES", 3)
    for number, code, _pdf in [*letters, *letters]:
        answer = client.get(f"/api/v1/verify/{number}?code={code}")
        assert answer.json == _fresh_answer(app, session, number)
    assert len(kept._kept) == 2  # the two used last
    assert kept._vehicles == 2
    assert client.get(f"/api/v1/verify/{big_number}?code={big_code}").json == _fresh_answer(app, session, big_number)
    assert [stamp.number for stamp, _ in kept._kept.values()] == [big_number]  # it pushed both out
    assert kept._vehicles == 3


def test_the_public_part_is_the_public_schema_of_the_letter(app, client, world, session) -> None:
    number, code, _ = _issue(client, world, world.vins[:2])
    answer = client.get(f"/api/v1/verify/{number}?code={code}").json
    with app.test_request_context():
        letter = session.query(Letter).filter_by(number=number).one()
        assert answer["letter"] == PublicLetterOutputSchema().dump(letter_body(letter))
    assert "revoked_by" not in (answer["letter"]["revocation"] or {})
    assert "verification_code" not in answer["letter"]


def test_the_kept_page_part_is_in_each_visitors_language(client, world) -> None:
    number, code, pdf = _issue(client, world, world.vins[:2])
    path = f"/verify/{number}?code={code}"
    for _ in range(2):  # made, then kept: both in the language asked for
        chinese = client.get(path, headers={"Accept-Language": "zh"}).get_data(as_text=True)
        english = client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert "售后服务网点" in chinese
        assert "After-sales outlets" not in chinese
        assert "After-sales outlets" in english
        assert "售后服务网点" not in english
        for page in (chinese, english):
            assert number in page
            assert all(vin in page for vin in world.vins[:2])
    body, content_type = multipart(pdf)
    uploaded = client.post("/verify", data=body, content_type=content_type, headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    assert "After-sales outlets" in uploaded
    assert all(vin in uploaded for vin in world.vins[:2])
