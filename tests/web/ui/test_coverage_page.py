"""Outlet coverage at a glance (/registry/coverage): which destination countries have outlets
today and which exporters asked for without one, as a chart (inline SVG) and a table."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from issuer import clock
from issuer.domain.eligibility import ReasonCode, VehicleDeclaration
from issuer.models import Manufacturer, User
from issuer.services.requests import submit_request
from tests import factories
from tests.conftest import TODAY

REGISTERED_ON = TODAY - dt.timedelta(days=30)
APPLYING_ON = TODAY + dt.timedelta(days=10)


def person(session: Session, role: str, **organisation: Any) -> User:
    """A user of ``role`` who reads the pages in English (the tests name English text)."""
    user = factories.user(session, role, **organisation)
    user.locale = "en"
    session.commit()
    return user


@dataclass
class Demand:
    acme: Manufacturer
    rival: Manufacturer
    staff: User
    exporter: User


def file_request(session: Session, exporter: User, manufacturer: Manufacturer, vehicles: list[tuple[str, str, str]]):  # type: ignore[no-untyped-def]
    """File a request through the real service: (vin, brand, destination) per vehicle."""
    request, assessment = submit_request(
        session=session,
        user=exporter,
        manufacturer_code=manufacturer.code,
        application_date=APPLYING_ON,
        reference="CONTRACT",
        vehicles=[
            VehicleDeclaration(vin=vin, brand=brand, model="E1", registration_date=REGISTERED_ON, destination=country)
            for vin, brand, country in vehicles
        ],
    )
    return request, assessment


@pytest.fixture
def demand(session: Session) -> Demand:
    """ACME: two outlets in Kazakhstan (every brand), one in Thailand (brand Example only), an
    inactive one in Uzbekistan, an expired one in Georgia and one not yet open in the Emirates.
    An exporter asks it for vehicles to KZ (2), RU (3, two requests), TH (1, brand Other) and
    UZ (1). A rival manufacturer is asked for one vehicle to Mongolia."""
    acme = factories.manufacturer(session, "ACME", wmis=("LGX",))
    rival = factories.manufacturer(session, "RIVAL", wmis=("LRW",))
    for code, country, brands in (("KZ-1", "KZ", ""), ("KZ-2", "KZ", ""), ("TH-1", "TH", "Example")):
        factories.outlet(session, acme, code=code, country=country, brands=brands)
    closed = factories.outlet(session, acme, code="UZ-1", country="UZ")
    closed.active = False
    session.commit()
    factories.outlet(session, acme, code="GE-1", country="GE", valid_to=TODAY - dt.timedelta(days=1))
    factories.outlet(session, acme, code="AE-1", country="AE", valid_from=TODAY + dt.timedelta(days=1))
    vins = [factories.make_vin("LGX", n) for n in range(7)]
    factories.register(session, acme, vins[:6])
    factories.register(session, acme, vins[6:], brand="Other")
    rival_vin = factories.make_vin("LRW", 1)
    factories.register(session, rival, [rival_vin])
    exporter = person(session, "exporter", exporter=factories.exporter(session, "TRADER"))

    _, first = file_request(
        session, exporter, acme, [(vins[0], "Example", "KZ"), (vins[1], "Example", "KZ"), (vins[2], "Example", "RU")]
    )
    assert ReasonCode.NO_OUTLET_IN_DESTINATION in first.vehicles[2].reasons
    file_request(
        session,
        exporter,
        acme,
        [(vins[3], "Example", "ru"), (vins[4], "Example", "RU"), (vins[6], "Other", "TH"), (vins[5], "Example", "UZ")],
    )
    file_request(session, exporter, rival, [(rival_vin, "Example", "MN")])
    staff = person(session, "aftersales", manufacturer=acme)
    return Demand(acme=acme, rival=rival, staff=staff, exporter=exporter)


def page(response: Any) -> str:
    return html_lib.unescape(response.get_data(as_text=True))


def table_row(html: str, country: str) -> tuple[str, list[str]]:
    """The coverage table's row of ``country``: its state and its cells as text."""
    match = re.search(rf'<tr class="coverage-(\w+)" data-country="{country}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {country}"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(2), re.S)
    return match.group(1), [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells]


def chart(html: str) -> str:
    match = re.search(r'<svg class="chart".*?</svg>', html, re.S)
    assert match, "the page has no chart"
    return match.group(0)


def test_the_page_shows_covered_and_uncovered_countries_with_their_numbers(demand: Demand, make_browser: Any) -> None:
    answer = make_browser(demand.staff).get("/registry/coverage")
    assert answer.status_code == 200
    html = page(answer)
    # Cells: active outlets, requests, vehicles asked for, without an outlet, refused for no outlet, brands.
    assert table_row(html, "KZ") == ("covered", ["2", "1", "2", "0", "0", "—"])
    assert table_row(html, "RU") == ("uncovered", ["none", "2", "3", "3", "3", "Example"])
    state, cells = table_row(html, "TH")
    assert state == "partial"
    assert cells[:5] == ["1", "1", "1", "1", "1"]
    assert cells[5].startswith("Other")
    assert "outlets serve: Example" in cells[5]
    assert table_row(html, "UZ") == ("uncovered", ["none", "1", "1", "1", "1", "Example"])
    # Outlets not in service today count nowhere; nor does another manufacturer's demand.
    for absent in ('data-country="GE"', 'data-country="AE"', 'data-country="MN"', "Mongolia"):
        assert absent not in html
    assert "<strong>2</strong> countries with active outlets today" in html
    assert "<strong>3</strong> countries asked for without coverage (5 vehicles)" in html
    # The table lists most asked-for countries first.
    order = [m for m in re.findall(r'data-country="(\w\w)"', html)]
    assert order == ["RU", "KZ", "TH", "UZ"]


def test_the_chart_is_an_inline_svg_sorted_by_demand_with_a_legend_and_labels(
    demand: Demand, make_browser: Any
) -> None:
    html = page(make_browser(demand.staff).get("/registry/coverage"))
    svg = chart(html)
    assert 'viewBox="0 0 360 184"' in svg  # four countries, 46 units each; it scales to the width
    assert re.search(
        r'<svg class="chart"[^>]*role="img"[^>]*aria-labelledby="coverage-chart-title coverage-chart-desc"', svg
    )
    assert not re.search(r'<svg class="chart"[^>]*\swidth=', svg)  # no fixed width: readable at 375 px
    assert '<title id="coverage-chart-title">Outlet coverage by destination country</title>' in svg
    assert "3 countries asked for without coverage (5 vehicles)" in svg
    labels = re.findall(r'font-weight="600" fill="#1d2733">([^<]+)</text>', svg)
    assert labels == ["Russian Federation (RU)", "Kazakhstan (KZ)", "Thailand (TH)", "Uzbekistan (UZ)"]
    # Green for vehicles with an outlet for their brand, red for those without, per country.
    assert svg.count('class="bar-covered"') == 1
    assert svg.count('class="bar-uncovered"') == 3
    russia = svg[svg.index("Russian Federation (RU)") : svg.index("Kazakhstan (KZ)")]
    assert 'class="bar-uncovered" x="0.0" y="23" width="300.0"' in russia  # the most asked for: the longest bar
    assert ">no outlet</text>" in russia
    kazakhstan = svg[svg.index("Kazakhstan (KZ)") : svg.index("Thailand (TH)")]
    assert 'class="bar-covered" x="0" y="69" width="200.0"' in kazakhstan
    assert ">2 outlets</text>" in kazakhstan
    assert (
        "<title>Russian Federation — active outlets: 0 · vehicles asked for: 3 · requests: 2"
        " · without an outlet for their brand: 3</title>"
    ) in svg
    # The legend, and nothing loaded from elsewhere.
    assert "Vehicles asked for with an outlet for their brand" in html
    assert "Vehicles asked for without an outlet" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script>" not in html


def test_the_period_counts_only_the_requests_filed_in_it(session: Session, demand: Demand, make_browser: Any) -> None:
    vin = factories.make_vin("LGX", 50)
    factories.register(session, demand.acme, [vin])
    with clock.frozen(TODAY - dt.timedelta(days=120)):
        file_request(session, demand.exporter, demand.acme, [(vin, "Example", "BR")])
    staff = make_browser(demand.staff)
    everything = page(staff.get("/registry/coverage"))
    assert table_row(everything, "BR")[1][:4] == ["none", "1", "1", "1"]
    recent = page(staff.get("/registry/coverage?period=90"))
    assert 'data-country="BR"' not in recent
    assert 'data-country="RU"' in recent
    assert '<option selected value="90">Last 90 days</option>' in recent


def test_a_platform_administrator_chooses_the_manufacturer(session: Session, demand: Demand, make_browser: Any) -> None:
    admin = make_browser(person(session, "platform_admin"))
    rival = page(admin.get("/registry/coverage?manufacturer=rival"))
    assert table_row(rival, "MN") == ("uncovered", ["none", "1", "1", "1", "1", "Example"])
    assert 'data-country="RU"' not in rival
    acme = page(admin.get("/registry/coverage?manufacturer=ACME"))
    assert 'data-country="RU"' in acme
    assert admin.get("/registry/coverage?manufacturer=NOBODY").status_code == 404


def test_staff_see_only_their_own_manufacturer_whatever_the_address_says(
    session: Session, demand: Demand, make_browser: Any
) -> None:
    html = page(make_browser(demand.staff).get("/registry/coverage?manufacturer=RIVAL"))
    assert 'data-country="RU"' in html
    assert 'data-country="MN"' not in html
    assert "Mongolia" not in html


def test_exporters_may_not_open_the_coverage_page(demand: Demand, make_browser: Any) -> None:
    assert make_browser(demand.exporter).get("/registry/coverage").status_code == 403


def test_a_manufacturer_with_nothing_yet_sees_an_empty_report(session: Session, make_browser: Any) -> None:
    lonely = factories.manufacturer(session, "LONELY", wmis=("LGX",))
    html = page(make_browser(person(session, "manufacturer_admin", manufacturer=lonely)).get("/registry/coverage"))
    assert "No active outlet and no request yet" in html
    assert '<svg class="chart"' not in html
