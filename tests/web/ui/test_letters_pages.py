"""The letter pages: the list, one letter with its content and history, the sealed PDF, revoking."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from issuer import clock
from issuer.models import CoveredVin, Letter, LetterStatus
from tests import factories
from tests.conftest import TODAY
from tests.web.ui.issuing import World, build_world, issue_through_page


@pytest.fixture
def world(session, settings) -> World:
    return build_world(session, settings)


def letter_row(session, number: str) -> Letter:
    session.expire_all()
    return session.scalar(select(Letter).where(Letter.number == number))


def revoke(browser, number: str, data: dict):  # type: ignore[no-untyped-def]
    return browser.post(f"/letters/{number}/revoke", data, form_page=f"/letters/{number}/revoke")


# -- who sees what -------------------------------------------------------------------------------


def test_an_exporter_lists_its_letters_and_never_another_exporters(world, make_browser):
    own = issue_through_page(make_browser, world, world.vins[:2])
    request_id = world.file(world.vins[2:3], user=world.other_exporter_user)
    staff = make_browser(world.aftersales)
    staff.post(f"/requests/{request_id}/decision", {"action": "all_eligible"}, form_page=f"/requests/{request_id}")
    world.session.expire_all()
    theirs = world.session.scalar(select(Letter.number).where(Letter.request_id == request_id))
    assert theirs is not None

    exporter = make_browser(world.exporter_user)
    html = exporter.get("/letters").get_data(as_text=True)
    assert f'href="/letters/{own}"' in html
    assert theirs not in html
    for path in (f"/letters/{theirs}", f"/letters/{theirs}/pdf"):
        assert exporter.get(path).status_code == 404

    staff_list = staff.get("/letters").get_data(as_text=True)
    assert own in staff_list
    assert theirs in staff_list


def test_staff_of_another_manufacturer_see_no_letter_of_this_one(world, make_browser):
    number = issue_through_page(make_browser, world, world.vins[:1])
    other = make_browser(world.other_aftersales)
    assert number not in other.get("/letters").get_data(as_text=True)
    for path in (f"/letters/{number}", f"/letters/{number}/pdf", f"/letters/{number}/revoke"):
        assert other.get(path).status_code == 404
    answer = other.post(f"/letters/{number}/revoke", {"reason": "x", "confirm": "y"}, form_page="/letters")
    assert answer.status_code == 404
    assert letter_row(world.session, number).status == LetterStatus.VALID


def test_the_list_shows_status_vehicles_destinations_and_the_pdf_link(world, make_browser):
    request_id = world.file(world.vins[:3], destinations={world.vins[2]: "TH"})
    staff = make_browser(world.aftersales)
    answer = staff.post(
        f"/requests/{request_id}/decision", {"action": "all_eligible"}, form_page=f"/requests/{request_id}"
    )
    number = answer.headers["Location"].rsplit("/", 1)[1]
    html = make_browser(world.exporter_user).get("/letters").get_data(as_text=True)
    row = re.search(rf'<tr>\s*<td><a class="vin" href="/letters/{number}">.*?</tr>', html, re.S).group(0)
    assert 'class="badge valid"' in row
    assert '<td class="num">3</td>' in row
    assert "Kazakhstan" in row
    assert "Thailand" in row
    assert TODAY.isoformat() in row
    assert f'href="/letters/{number}/pdf"' in row


# -- one letter ---------------------------------------------------------------------------------


def test_the_letter_page_shows_its_content_verification_and_history(world, make_browser, app):
    number = issue_through_page(make_browser, world, world.vins[:2])
    letter = letter_row(world.session, number)
    html = make_browser(world.exporter_user).get(f"/letters/{number}").get_data(as_text=True)
    assert world.vins[0] in html
    assert world.vins[1] in html
    assert world.outlet_kz.name in html
    assert world.manufacturer.name in html
    assert letter.verification_code in html
    verify_url = f"http://issuer.test/verify/{number}?code={letter.verification_code}"
    assert f'href="{verify_url}"' in html
    assert "<svg" in html  # the QR code, drawn inline
    assert f'href="/letters/{number}/pdf"' in html
    assert f'href="/requests/{letter.request_id}"' in html
    assert "Revoke" not in html  # exporters do not revoke
    history = html[html.index('id="history-heading"') :]
    assert "Letter issued" in history
    assert "by the manufacturer" in history
    # Exporters never see who at the manufacturer acted, from where, or the internal details.
    assert world.aftersales.email not in history
    assert "127.0.0.1" not in history
    assert "pdf_sha256" not in history
    staff_html = make_browser(world.aftersales).get(f"/letters/{number}").get_data(as_text=True)
    staff_history = staff_html[staff_html.index('id="history-heading"') :]
    assert world.aftersales.email in staff_history
    assert "pdf_sha256" in staff_history


def test_a_revoked_letter_does_not_name_the_revoker_to_the_exporter(world, make_browser):
    number = issue_through_page(make_browser, world, world.vins[:1])
    staff = make_browser(world.aftersales)
    assert revoke(staff, number, {"reason": "Wrong destination", "confirm": "y"}).status_code == 302
    html = make_browser(world.exporter_user).get(f"/letters/{number}").get_data(as_text=True)
    assert "Wrong destination" in html
    assert world.aftersales.email not in html
    assert world.aftersales.email in staff.get(f"/letters/{number}").get_data(as_text=True)


def test_the_list_reads_no_letter_content_and_counts_from_the_letters_vehicles(world, make_browser):
    """The list must not load every letter's whole snapshot: counts and destinations come from
    letter_vehicles, the names and reference as single fields."""
    from sqlalchemy import inspect

    from issuer.services import letters as letter_service

    request_id = world.file(world.vins[:3], destinations={world.vins[0]: "TH"}, reference="REF-LIST-7")
    staff = make_browser(world.aftersales)
    staff.post(f"/requests/{request_id}/decision", {"action": "all_eligible"}, form_page=f"/requests/{request_id}")
    world.session.expire_all()
    listed = letter_service.list_letters(session=world.session, user=world.exporter_user)
    assert len(listed) == 1
    assert "content" in inspect(listed[0]).unloaded
    summary = letter_service.letter_summaries(session=world.session, letter_ids=[listed[0].id])[listed[0].id]
    assert (summary.vehicle_count, summary.destinations) == (3, ["KZ", "TH"])
    assert (summary.manufacturer, summary.exporter) == (world.manufacturer.name, world.exporter.name)
    assert summary.reference == "REF-LIST-7"
    html = make_browser(world.exporter_user).get("/letters").get_data(as_text=True)
    assert "REF-LIST-7" in html
    assert "Kazakhstan, Thailand" in html


def test_the_pdf_is_the_sealed_file_byte_for_byte(world, make_browser, client):
    number = issue_through_page(make_browser, world, world.vins[:1])
    letter = world.session.scalar(select(Letter).where(Letter.number == number))
    world.session.refresh(letter, ["pdf"])
    for user in (world.exporter_user, world.aftersales, world.admin):
        answer = make_browser(user).get(f"/letters/{number}/pdf")
        assert answer.status_code == 200
        assert answer.mimetype == "application/pdf"
        assert answer.headers["Content-Disposition"] == f'attachment; filename="{number}.pdf"'
        assert answer.data == letter.pdf
    token = factories.token(world.session, world.aftersales)
    from_api = client.get(f"/api/v1/letters/{number}/pdf", headers={"Authorization": f"Bearer {token}"})
    assert from_api.data == letter.pdf


def test_an_unknown_letter_is_not_found(world, make_browser):
    browser = make_browser(world.exporter_user)
    assert browser.get("/letters/NOPE-2026-000001").status_code == 404
    assert browser.get("/letters/NOPE-2026-000001/pdf").status_code == 404


# -- revoking ----------------------------------------------------------------------------------


def test_the_revoke_page_explains_and_asks_for_a_reason_and_a_confirmation(world, make_browser):
    number = issue_through_page(make_browser, world, world.vins[:1])
    staff = make_browser(world.aftersales)
    assert f'href="/letters/{number}/revoke"' in staff.get(f"/letters/{number}").get_data(as_text=True)
    html = staff.get(f"/letters/{number}/revoke").get_data(as_text=True)
    assert "The letter becomes invalid at once" in html
    assert "Its vehicles are free again" in html
    assert 'name="reason"' in html
    assert 'name="confirm"' in html
    assert "I understand this cannot be undone" in html
    assert 'name="csrf_token"' in html


def test_an_exporter_cannot_revoke(world, make_browser):
    number = issue_through_page(make_browser, world, world.vins[:1])
    exporter = make_browser(world.exporter_user)
    assert exporter.get(f"/letters/{number}/revoke").status_code == 403
    answer = exporter.post(
        f"/letters/{number}/revoke", {"reason": "mine", "confirm": "y"}, form_page=f"/letters/{number}"
    )
    assert answer.status_code == 403
    assert letter_row(world.session, number).status == LetterStatus.VALID


def test_revoking_without_a_reason_is_refused_beside_the_field(world, make_browser):
    number = issue_through_page(make_browser, world, world.vins[:1])
    answer = revoke(make_browser(world.aftersales), number, {"reason": "   ", "confirm": "y"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert re.search(r'<p class="error" id="reason-error">Give the reason for revoking', html)
    assert re.search(r'<input[^>]*checked[^>]*name="confirm"|<input[^>]*name="confirm"[^>]*checked', html)
    assert letter_row(world.session, number).status == LetterStatus.VALID


def test_revoking_without_the_confirmation_is_refused_keeping_the_reason(world, make_browser):
    number = issue_through_page(make_browser, world, world.vins[:1])
    answer = revoke(make_browser(world.admin), number, {"reason": "Wrong destination declared"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert re.search(r'<p class="error" id="confirm-error">Tick this box', html)
    assert re.search(r'<textarea[^>]*name="reason"[^>]*>\s*Wrong destination declared</textarea>', html)
    assert letter_row(world.session, number).status == LetterStatus.VALID


def test_revoking_makes_the_letter_invalid_frees_its_vins_and_shows_on_its_page(world, make_browser):
    number = issue_through_page(make_browser, world, world.vins[:2])
    staff = make_browser(world.aftersales)
    answer = revoke(staff, number, {"reason": "Wrong destination declared", "confirm": "y"})
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"/letters/{number}")
    letter = letter_row(world.session, number)
    assert letter.status == LetterStatus.REVOKED
    assert letter.revocation_reason == "Wrong destination declared"
    assert world.session.scalars(select(CoveredVin).where(CoveredVin.letter_id == letter.id)).all() == []

    page = staff.get(answer.headers["Location"]).get_data(as_text=True)
    assert f"Letter {number} is revoked." in page
    assert 'class="badge revoked"' in page
    assert "Wrong destination declared" in page
    assert f'href="/letters/{number}/revoke"' not in page
    history = page[page.index('id="history-heading"') :]
    assert "Letter revoked" in history

    exporter = make_browser(world.exporter_user)
    assert number in exporter.get("/letters?status=revoked").get_data(as_text=True)
    assert number not in exporter.get("/letters?status=valid").get_data(as_text=True)
    assert 'class="badge revoked"' in exporter.get(f"/letters/{number}").get_data(as_text=True)


def test_a_revoked_letter_cannot_be_revoked_again(world, make_browser):
    number = issue_through_page(make_browser, world, world.vins[:1])
    staff = make_browser(world.aftersales)
    form_page = staff.get(f"/letters/{number}/revoke").get_data(as_text=True)
    from tests.web.ui.conftest import csrf_token

    token = csrf_token(form_page)
    data = {"reason": "First", "confirm": "y", "csrf_token": token}
    assert staff.post(f"/letters/{number}/revoke", data).status_code == 302
    again = staff.post(f"/letters/{number}/revoke", {**data, "reason": "Second"})
    assert again.status_code == 409
    html = again.get_data(as_text=True)
    assert "already revoked" in html
    assert "only a valid letter can be revoked" in html
    assert letter_row(world.session, number).revocation_reason == "First"


def test_an_expired_letter_is_listed_as_expired(world, make_browser):
    number = issue_through_page(make_browser, world, world.vins[:1], valid_until=TODAY.isoformat())
    exporter = make_browser(world.exporter_user)
    assert number in exporter.get("/letters?status=valid").get_data(as_text=True)
    with clock.frozen(TODAY + dt.timedelta(days=1)):
        assert number not in exporter.get("/letters?status=valid").get_data(as_text=True)
        html = exporter.get("/letters?status=expired").get_data(as_text=True)
        assert number in html
        assert 'class="badge expired"' in html
        assert 'class="badge expired"' in exporter.get(f"/letters/{number}").get_data(as_text=True)


def test_a_correction_links_the_superseded_letter_and_its_successor(world, make_browser):
    old = issue_through_page(make_browser, world, world.vins[:2])
    request_id = world.file(world.vins[:2], destination="TH", supersedes=old)
    staff = make_browser(world.aftersales)
    request_page = staff.get(f"/requests/{request_id}").get_data(as_text=True)
    assert f'href="/letters/{old}"' in request_page  # "Corrects letter"
    answer = staff.post(
        f"/requests/{request_id}/decision", {"action": "all_eligible"}, form_page=f"/requests/{request_id}"
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    new = answer.headers["Location"].rsplit("/", 1)[1]

    old_page = staff.get(f"/letters/{old}").get_data(as_text=True)
    assert 'class="badge superseded"' in old_page
    assert f'href="/letters/{new}"' in old_page
    assert "Letter superseded" in old_page[old_page.index('id="history-heading"') :]
    new_page = staff.get(f"/letters/{new}").get_data(as_text=True)
    assert f'href="/letters/{old}"' in new_page
    assert old in make_browser(world.exporter_user).get("/letters?status=superseded").get_data(as_text=True)
