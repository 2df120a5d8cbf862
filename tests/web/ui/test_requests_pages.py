"""The request pages: an exporter follows its requests; after-sales staff review and decide them."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from issuer.domain.eligibility import REASON_TEXT, ReasonCode
from issuer.models import Letter, LetterRequest, LetterStatus
from issuer.services import outlets as outlet_service
from tests import factories
from tests.web.ui.issuing import World, build_world


@pytest.fixture
def world(session, settings) -> World:
    return build_world(session, settings)


def checkbox(html: str, name: str, vin: str) -> str:
    """The <input> of one vehicle's Approve or Reject box."""
    match = re.search(rf'<input type="checkbox" name="{name}" value="{vin}"[^>]*>', html)
    assert match, f"no {name} box for {vin}"
    return match.group(0)


def row_of(html: str, vin: str) -> str:
    match = re.search(rf'<tr[^>]*>\s*<td class="num">\d+</td>\s*<td class="vin">{vin}</td>.*?</tr>', html, re.S)
    assert match, f"no row for {vin}"
    return match.group(0)


def letter_of(session, request_id: int) -> Letter:
    session.expire_all()
    return session.scalar(select(Letter).where(Letter.request_id == request_id))


def decide(browser, request_id: int, data: dict):  # type: ignore[no-untyped-def]
    return browser.post(f"/requests/{request_id}/decision", data, form_page=f"/requests/{request_id}")


# -- who sees what -------------------------------------------------------------------------------


def test_an_exporter_sees_its_own_requests_and_not_another_exporters(world, make_browser):
    own = world.file(world.vins[:2], reference="OWN-REF-1")
    theirs = world.file(world.vins[2:3], user=world.other_exporter_user, reference="THEIR-REF-9")
    exporter = make_browser(world.exporter_user)

    listing = exporter.get("/requests")
    assert listing.status_code == 200
    html = listing.get_data(as_text=True)
    assert f'href="/requests/{own}"' in html
    assert "OWN-REF-1" in html
    assert f'href="/requests/{theirs}"' not in html
    assert "THEIR-REF-9" not in html

    assert exporter.get(f"/requests/{own}").status_code == 200
    assert exporter.get(f"/requests/{theirs}").status_code == 404


def test_staff_of_another_manufacturer_get_404_and_an_empty_queue(world, make_browser):
    request_id = world.file(reference="ACME-REF")
    other = make_browser(world.other_aftersales)
    assert other.get(f"/requests/{request_id}").status_code == 404
    html = other.get("/requests?status=all").get_data(as_text=True)
    assert "ACME-REF" not in html
    assert f'href="/requests/{request_id}"' not in html


def test_staff_of_another_manufacturer_cannot_decide_a_request(world, make_browser):
    request_id = world.file()
    other = make_browser(world.other_aftersales)
    answer = other.post(f"/requests/{request_id}/decision", {"action": "all_eligible"}, form_page="/requests")
    assert answer.status_code == 404
    assert world.session.get(LetterRequest, request_id).status == "submitted"


def test_a_reviewer_may_not_open_the_request_pages(world, make_browser):
    reviewer = make_browser(factories.user(world.session, "reviewer"))
    assert reviewer.get("/requests").status_code == 403


def test_the_queue_lists_waiting_requests_oldest_first_and_filters_by_status(world, make_browser):
    first = world.file(world.vins[:1], reference="FIRST")
    second = world.file(world.vins[1:2], reference="SECOND")
    decided = world.file(world.vins[2:3], reference="DECIDED")
    staff = make_browser(world.aftersales)
    assert decide(staff, decided, {"action": "all_eligible"}).status_code == 302

    html = staff.get("/requests").get_data(as_text=True)
    assert html.index("FIRST") < html.index("SECOND")
    assert "DECIDED" not in html  # the queue shows what waits for a decision
    approved = staff.get("/requests?status=approved").get_data(as_text=True)
    assert "DECIDED" in approved
    assert "FIRST" not in approved
    everything = staff.get("/requests?status=all").get_data(as_text=True)
    assert all(ref in everything for ref in ("FIRST", "SECOND", "DECIDED"))
    assert everything.index("FIRST") < everything.index("DECIDED")  # waiting ones first
    number = letter_of(world.session, decided).number
    assert f'href="/letters/{number}"' in everything
    assert first != second


def test_a_platform_administrator_sees_every_request(world, make_browser):
    world.file(world.vins[:1], reference="ONE")
    world.file(world.vins[1:2], user=world.other_exporter_user, reference="TWO")
    html = make_browser(world.platform_admin).get("/requests?status=all").get_data(as_text=True)
    assert "ONE" in html
    assert "TWO" in html


def test_the_list_is_paginated(world, make_browser, monkeypatch):
    from issuer.web.ui import requests as pages

    monkeypatch.setattr(pages, "PER_PAGE", 2)
    ids = [world.file(world.vins[i : i + 1], reference=f"REF-{i}") for i in range(3)]
    exporter = make_browser(world.exporter_user)
    first = exporter.get("/requests").get_data(as_text=True)
    assert "Page 1 of 2" in first
    second = exporter.get("/requests?page=2").get_data(as_text=True)
    assert f'href="/requests/{ids[0]}"' in second  # newest first for the exporter
    assert f'href="/requests/{ids[0]}"' not in first
    assert exporter.get("/requests?page=nonsense").status_code == 200


# -- the request page ----------------------------------------------------------------------------


def test_the_exporter_sees_its_request_read_only_with_verdicts_in_plain_words(world, make_browser):
    request_id = world.file(world.vins[:2], destinations={world.vins[1]: "DE"})
    html = make_browser(world.exporter_user).get(f"/requests/{request_id}").get_data(as_text=True)
    assert world.exporter.name in html
    assert "CONTRACT-2026-001" in html
    assert 'name="approve"' not in html
    assert "Approve all eligible" not in html
    assert REASON_TEXT[ReasonCode.NO_OUTLET_IN_DESTINATION][1] in row_of(html, world.vins[1])
    assert "Germany" in row_of(html, world.vins[1])
    first = row_of(html, world.vins[0])
    assert "Eligible" in first
    assert "2027-02-13" in first  # letter_not_needed_from: registration + 181 days


def test_the_page_shows_the_outlets_that_would_be_printed(world, make_browser):
    request_id = world.file(world.vins[:2], destinations={world.vins[1]: "TH"})
    html = make_browser(world.aftersales).get(f"/requests/{request_id}").get_data(as_text=True)
    section = html[html.index("Outlets that would be printed") : html.index('id="vehicles-heading"')]
    assert world.outlet_kz.name in section
    assert world.outlet_th.name in section
    assert world.outlet_kz_other_brand.name not in section  # covers another brand only
    assert "Kazakhstan" in section
    assert "Thailand" in section


def test_staff_see_todays_verdict_when_it_differs_and_cannot_tick_a_vehicle_refused_today(world, make_browser):
    request_id = world.file(world.vins[:2], destinations={world.vins[1]: "TH"})
    outlet_service.update_outlet(
        session=world.session, manufacturer=world.manufacturer, code="TH-1", values={"active": False}, actor="test"
    )
    html = make_browser(world.aftersales).get(f"/requests/{request_id}").get_data(as_text=True)
    assert "1 vehicle has another verdict today" in html
    row = row_of(html, world.vins[1])
    assert "Refused" in row
    assert REASON_TEXT[ReasonCode.NO_OUTLET_IN_DESTINATION][1] in row
    assert "disabled" in checkbox(html, "approve", world.vins[1])
    assert "disabled" not in checkbox(html, "approve", world.vins[0])
    assert "No active outlet covers these vehicles here today" in html
    assert 'name="csrf_token"' in html[html.index('id="decision"') :]


def test_a_manufacturer_administrator_sees_the_review_but_no_decision_form(world, make_browser):
    request_id = world.file()
    html = make_browser(world.admin).get(f"/requests/{request_id}").get_data(as_text=True)
    assert "Outlets that would be printed" in html
    assert "Approve all eligible" not in html
    assert "Only after-sales staff decide requests." in html


def test_the_request_page_shows_its_history(world, make_browser):
    request_id = world.file(world.vins[:1])
    staff = make_browser(world.aftersales)
    assert decide(staff, request_id, {"action": "all_eligible", "note": "checked"}).status_code == 302
    html = make_browser(world.exporter_user).get(f"/requests/{request_id}").get_data(as_text=True)
    history = html[html.index('id="history-heading"') :]
    assert "Request submitted" in history
    assert "Request decided" in history
    assert "by your company" in history
    assert "by the manufacturer" in history
    # Exporters see neither e-mails, nor addresses, nor the internal details.
    for hidden in (world.aftersales.email, world.exporter_user.email, "127.0.0.1", "checked", "approved:"):
        assert hidden not in history, hidden
    assert world.aftersales.email not in html  # nor as the decider in the facts
    staff_html = make_browser(world.aftersales).get(f"/requests/{request_id}").get_data(as_text=True)
    staff_history = staff_html[staff_html.index('id="history-heading"') :]
    assert world.aftersales.email in staff_history
    assert "checked" in staff_history


def test_a_long_history_shows_the_newest_entries_and_links_administrators_to_the_audit_trail(world, make_browser):
    from issuer.services import audit

    request_id = world.file(world.vins[:1])
    for n in range(audit.HISTORY_LIMIT):
        audit.record(
            world.session,
            action="request.decided",
            object_type="request",
            object_id=request_id,
            actor=world.aftersales.email,
            manufacturer_id=world.manufacturer.id,
            exporter_id=world.exporter.id,
            details={"note": f"entry-{n:02d}"},
        )
    world.session.commit()
    shown = audit.history_of(world.session, object_type="request", object_id=request_id)
    assert len(shown) == audit.HISTORY_LIMIT
    assert [e.seq for e in shown] == sorted(e.seq for e in shown)  # oldest first
    assert shown[-1].details["note"] == f"entry-{audit.HISTORY_LIMIT - 1:02d}"  # the newest included
    assert all(e.action != "request.submitted" for e in shown)  # the oldest left out

    link = f'href="/audit?object_type=request&amp;object_id={request_id}"'
    admin_html = make_browser(world.admin).get(f"/requests/{request_id}").get_data(as_text=True)
    assert f"The newest {audit.HISTORY_LIMIT} of {audit.HISTORY_LIMIT + 1} entries." in admin_html
    assert link in admin_html
    staff_html = make_browser(world.aftersales).get(f"/requests/{request_id}").get_data(as_text=True)
    assert link not in staff_html  # after-sales cannot open the audit trail
    staff_history = staff_html[staff_html.index('id="history-heading"') :]
    assert "entry-00" in staff_history
    assert "Request submitted" not in staff_history  # the oldest entry is left out


class WorkerDied(Exception):
    """Stands for what no handler of issuance expects: a killed worker, a failed last commit."""


class DyingSealer:
    """A sealer that dies mid-seal, leaving the letter reserved (pending) and never sealed."""

    name = "dying"

    def seal(self, pdf: bytes, **_: object) -> bytes:
        raise WorkerDied


def _crash_while_issuing(app, world: World, request_id: int) -> Letter:
    import dataclasses

    from issuer.services import letters as letter_service

    crashing = dataclasses.replace(app.extensions["issuer.issuance"], sealer=DyingSealer())
    with pytest.raises(WorkerDied):
        letter_service.decide_request(
            session=world.session,
            user=world.aftersales,
            request_id=request_id,
            approve="all_eligible",
            reject=[],
            note="",
            issuance=crashing,
        )
    world.session.rollback()
    letter = letter_of(world.session, request_id)
    assert letter.status == LetterStatus.PENDING
    assert world.session.get(LetterRequest, request_id).status == "approved"
    return letter


def test_a_letter_whose_issuance_did_not_finish_is_finished_from_the_request_page(world, make_browser, app):
    request_id = world.file(world.vins[:2])
    pending = _crash_while_issuing(app, world, request_id)

    exporter_html = make_browser(world.exporter_user).get(f"/requests/{request_id}").get_data(as_text=True)
    assert "The letter is being issued" in exporter_html
    assert "/completion" not in exporter_html
    admin_html = make_browser(world.admin).get(f"/requests/{request_id}").get_data(as_text=True)
    assert f"Issuing letter {pending.number} did not finish." in admin_html
    assert "/completion" not in admin_html  # only after-sales issue letters

    staff = make_browser(world.aftersales)
    page = staff.get(f"/requests/{request_id}").get_data(as_text=True)
    assert f"Issuing letter {pending.number} did not finish." in page
    form = re.search(rf'<form method="post" action="/requests/{request_id}/completion">.*?</form>', page, re.S)
    assert form, page
    assert 'name="csrf_token"' in form.group(0)
    assert staff.client.post(f"/requests/{request_id}/completion", data={}).status_code == 400  # no CSRF token:
    assert letter_of(world.session, request_id).status == LetterStatus.PENDING  # nothing done

    answer = staff.post(f"/requests/{request_id}/completion", {}, form_page=f"/requests/{request_id}")
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"/letters/{pending.number}")
    letter = letter_of(world.session, request_id)
    assert (letter.number, letter.status) == (pending.number, LetterStatus.VALID)
    exporter_html = make_browser(world.exporter_user).get(f"/requests/{request_id}").get_data(as_text=True)
    assert "The letter is being issued" not in exporter_html
    assert f'href="/letters/{pending.number}"' in exporter_html
    # Finishing twice is refused plainly, and the letter stays as it is.
    again = staff.post(f"/requests/{request_id}/completion", {}, form_page=f"/requests/{request_id}")
    assert again.status_code == 302
    assert "already decided" in staff.get(again.headers["Location"]).get_data(as_text=True)


def test_the_requests_list_says_a_letter_is_being_issued_while_its_issuance_is_unfinished(world, make_browser, app):
    request_id = world.file(world.vins[:2])
    _crash_while_issuing(app, world, request_id)

    for user in (world.exporter_user, world.aftersales):
        listing = make_browser(user).get("/requests?status=all").get_data(as_text=True)
        row = re.search(rf'<tr>(?:(?!</tr>).)*href="/requests/{request_id}"(?:(?!</tr>).)*</tr>', listing, re.S)
        assert row, listing
        assert "Being issued" in row.group(0)


def test_staff_of_another_manufacturer_cannot_finish_a_pending_letter(world, make_browser, app):
    request_id = world.file(world.vins[:1])
    _crash_while_issuing(app, world, request_id)
    other = make_browser(world.other_aftersales)
    assert other.post(f"/requests/{request_id}/completion", {}, form_page="/requests").status_code == 404
    assert letter_of(world.session, request_id).status == LetterStatus.PENDING


# -- deciding ----------------------------------------------------------------------------------


def test_aftersales_approve_all_eligible_and_the_letter_downloads_as_the_api_gives_it(world, make_browser, client):
    request_id = world.file(world.vins[:3], destinations={world.vins[2]: "DE"})
    staff = make_browser(world.aftersales)
    answer = decide(staff, request_id, {"action": "all_eligible"})
    assert answer.status_code == 302
    letter = letter_of(world.session, request_id)
    assert letter.status == LetterStatus.VALID
    assert answer.headers["Location"].endswith(f"/letters/{letter.number}")
    assert sorted(v.vin for v in letter.vehicles) == sorted(world.vins[:2])

    page = staff.get(answer.headers["Location"]).get_data(as_text=True)
    assert f"Letter {letter.number} issued for 2 vehicle(s)." in page

    exporter = make_browser(world.exporter_user)
    request_page = exporter.get(f"/requests/{request_id}").get_data(as_text=True)
    assert f'href="/letters/{letter.number}/pdf"' in request_page
    assert "Not approved" in row_of(request_page, world.vins[2])
    downloaded = exporter.get(f"/letters/{letter.number}/pdf")
    token = factories.token(world.session, world.exporter_user)
    from_api = client.get(f"/api/v1/letters/{letter.number}/pdf", headers={"Authorization": f"Bearer {token}"})
    assert downloaded.status_code == from_api.status_code == 200
    assert downloaded.data == from_api.data
    assert downloaded.data.startswith(b"%PDF-")


def test_approve_selected_and_reject_selected_with_a_reason_in_one_decision(world, make_browser):
    request_id = world.file(world.vins[:4])
    staff = make_browser(world.aftersales)
    answer = decide(
        staff,
        request_id,
        {
            "action": "selected",
            "approve": world.vins[:2],
            "reject": [world.vins[2]],
            "reason": "Sold to a dealer in another country",
            "note": "Two approved",
        },
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    letter = letter_of(world.session, request_id)
    assert sorted(v.vin for v in letter.vehicles) == sorted(world.vins[:2])
    html = staff.get(f"/requests/{request_id}").get_data(as_text=True)
    assert "Sold to a dealer in another country" in row_of(html, world.vins[2])
    assert "Rejected" in row_of(html, world.vins[2])
    assert "Not approved" in row_of(html, world.vins[3])
    assert "Two approved" in html


def test_rejecting_everything_goes_back_to_the_request(world, make_browser):
    request_id = world.file(world.vins[:2])
    staff = make_browser(world.aftersales)
    answer = decide(staff, request_id, {"action": "reject", "reject": world.vins[:2], "reason": "Duplicate request"})
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"/requests/{request_id}")
    assert letter_of(world.session, request_id) is None
    html = staff.get(answer.headers["Location"]).get_data(as_text=True)
    assert "rejected; the exporter is told the reason" in html
    assert 'class="badge rejected"' in html


def test_rejecting_without_a_reason_is_refused_beside_the_field_keeping_the_ticks(world, make_browser):
    request_id = world.file(world.vins[:3])
    staff = make_browser(world.aftersales)
    answer = decide(
        staff,
        request_id,
        {"action": "selected", "approve": [world.vins[0]], "reject": [world.vins[1]], "reason": "  ", "note": "typed"},
    )
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert re.search(r'<p class="error" id="reason-error">Give the reason for rejecting', html)
    assert "checked" in checkbox(html, "approve", world.vins[0])
    assert "checked" in checkbox(html, "reject", world.vins[1])
    assert "checked" not in checkbox(html, "approve", world.vins[2])
    assert re.search(r'<textarea[^>]*name="note"[^>]*>\s*typed</textarea>', html)
    assert letter_of(world.session, request_id) is None
    assert world.session.get(LetterRequest, request_id).status == "submitted"


def test_approving_a_vehicle_refused_today_is_refused_with_a_clear_error(world, make_browser):
    request_id = world.file(world.vins[:2], destinations={world.vins[1]: "DE"})
    staff = make_browser(world.aftersales)
    answer = decide(staff, request_id, {"action": "selected", "approve": world.vins[:2]})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    row = row_of(html, world.vins[1])
    assert 'class="has-error"' in row
    assert "Refused today: " + REASON_TEXT[ReasonCode.NO_OUTLET_IN_DESTINATION][1] in row
    assert "checked" in checkbox(html, "approve", world.vins[0])
    assert letter_of(world.session, request_id) is None


def test_approve_selected_without_a_tick_and_a_past_validity_are_refused_beside_the_fields(world, make_browser):
    request_id = world.file(world.vins[:1])
    staff = make_browser(world.aftersales)
    answer = decide(staff, request_id, {"action": "selected", "valid_until": "2026-01-01"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert 'id="approve-error">Tick the vehicles to approve' in html
    assert 'id="valid_until-error">The letter cannot end before today' in html
    assert 'value="2026-01-01"' in html


def test_a_decision_on_a_decided_request_is_a_conflict(world, make_browser):
    request_id = world.file(world.vins[:1])
    staff = make_browser(world.aftersales)
    form_page = staff.get(f"/requests/{request_id}").get_data(as_text=True)
    from tests.web.ui.conftest import csrf_token

    token = csrf_token(form_page)
    assert (
        staff.post(f"/requests/{request_id}/decision", {"action": "all_eligible", "csrf_token": token}).status_code
        == 302
    )
    again = staff.post(f"/requests/{request_id}/decision", {"action": "all_eligible", "csrf_token": token})
    assert again.status_code == 409
    assert "already decided" in again.get_data(as_text=True)


def test_an_exporter_cannot_decide(world, make_browser):
    request_id = world.file(world.vins[:1])
    exporter = make_browser(world.exporter_user)
    answer = decide(exporter, request_id, {"action": "all_eligible"})
    assert answer.status_code == 403
    assert letter_of(world.session, request_id) is None


def test_the_decision_form_needs_its_csrf_token(world, make_browser):
    request_id = world.file(world.vins[:1])
    staff = make_browser(world.aftersales)
    answer = staff.client.post(f"/requests/{request_id}/decision", data={"action": "all_eligible"})
    assert answer.status_code in (400, 422)
    assert letter_of(world.session, request_id) is None


def test_reasons_are_explained_in_the_users_language(world, make_browser):
    request_id = world.file(world.vins[:1], destination="DE")
    world.exporter_user.locale = "zh"
    world.session.commit()
    html = make_browser(world.exporter_user).get(f"/requests/{request_id}").get_data(as_text=True)
    zh, en = REASON_TEXT[ReasonCode.NO_OUTLET_IN_DESTINATION]
    assert zh in row_of(html, world.vins[0])
    assert en not in html
    assert "德国" in row_of(html, world.vins[0])


def test_pressing_enter_in_the_form_decides_nothing(world, make_browser):
    request_id = world.file(world.vins[:1])
    staff = make_browser(world.aftersales)
    answer = decide(staff, request_id, {"action": ""})
    assert answer.status_code == 422
    assert "Choose one of the decision buttons." in answer.get_data(as_text=True)
    assert letter_of(world.session, request_id) is None
