"""Outlet coverage at a glance: per destination country, the manufacturer's outlets in service
today and what exporters asked it for there.

A vehicle asked for is *without coverage* when no outlet of the manufacturer that is active and
valid today serves its brand in its destination (the same test a letter's outlets pass,
``OutletCoverage.serves``). The counts are made by the database, grouped by country and brand,
so the report costs a few small queries whatever the number of requests; only the distinct
(country, brand) pairs are matched against the outlets here.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import String, case, cast, func, or_, select
from sqlalchemy.orm import Session

from issuer import clock
from issuer.domain.countries import lookup_country
from issuer.domain.eligibility import ReasonCode
from issuer.domain.outlets import OutletCoverage, normalise_brand, parse_brands
from issuer.models import LetterRequest, Manufacturer, Outlet, RequestVehicle


@dataclass
class CountryCoverage:
    """One destination country of the report."""

    country: str  # ISO 3166-1 alpha-2
    outlets: int = 0  # active and valid today
    all_brands: bool = False  # some outlet there serves every brand
    outlet_brands: set[str] = field(default_factory=set)  # brands named by the outlets there
    requests: int = 0  # requests with at least one vehicle for this country
    vehicles: int = 0  # vehicles asked for
    uncovered: int = 0  # of those, vehicles whose brand no outlet there serves today
    refused_no_outlet: int = 0  # vehicles refused at filing for NO_OUTLET_IN_DESTINATION
    # brands asked for without an outlet, by their compared form, as an exporter spelt them
    uncovered_brand_names: dict[str, str] = field(default_factory=dict)

    @property
    def uncovered_brands(self) -> list[str]:
        return sorted(self.uncovered_brand_names.values(), key=str.casefold)

    @property
    def covered_vehicles(self) -> int:
        return self.vehicles - self.uncovered

    @property
    def state(self) -> str:
        """``covered`` (every vehicle asked for has an outlet, or outlets and no demand),
        ``partial`` (outlets, but not for every brand asked) or ``uncovered`` (no outlet)."""
        if self.outlets == 0:
            return "uncovered"
        return "partial" if self.uncovered else "covered"


@dataclass
class CoverageReport:
    manufacturer: Manufacturer
    on: dt.date
    since: dt.date | None
    countries: list[CountryCoverage]  # most vehicles asked for first

    @property
    def covered(self) -> list[CountryCoverage]:
        return [c for c in self.countries if c.outlets]

    @property
    def asked_without_coverage(self) -> list[CountryCoverage]:
        return [c for c in self.countries if c.uncovered]

    @property
    def max_vehicles(self) -> int:
        return max((c.vehicles for c in self.countries), default=0)


def coverage_report(
    session: Session, *, manufacturer: Manufacturer, since: dt.date | None = None, on: dt.date | None = None
) -> CoverageReport:
    """The coverage of ``manufacturer`` on day ``on`` (today in China), against the requests
    filed to it since ``since`` (China date, inclusive; None: every request)."""
    on = on or clock.today_in_china()
    countries: dict[str, CountryCoverage] = {}

    def entry(code: str) -> CountryCoverage:
        if code not in countries:
            countries[code] = CountryCoverage(country=code)
        return countries[code]

    serving: dict[str, list[OutletCoverage]] = defaultdict(list)
    outlets = session.execute(
        select(Outlet.code, Outlet.country, Outlet.brands).where(
            Outlet.manufacturer_id == manufacturer.id,
            Outlet.active.is_(True),
            Outlet.valid_from <= on,
            or_(Outlet.valid_to.is_(None), Outlet.valid_to >= on),
        )
    )
    for code, country, brands in outlets:
        item = entry(country)
        item.outlets += 1
        coverage = OutletCoverage(code=code, country=country, brands=parse_brands(brands), valid_from=on, valid_to=None)
        if coverage.brands:
            item.outlet_brands.update(b.strip() for b in brands.replace("；", ";").split(";") if b.strip())
        else:
            item.all_brands = True
        serving[country].append(coverage)

    scope = [LetterRequest.manufacturer_id == manufacturer.id]
    if since is not None:
        # created_at is an instant; the China day ``since`` starts at 00:00 UTC+8.
        start = dt.datetime.combine(since, dt.time(0, 0), clock.CHINA_TIME).astimezone(dt.UTC)
        scope.append(LetterRequest.created_at >= start)
    # The reasons are a JSON list; its text holds the code in quotes on every backend.
    refused = case((cast(RequestVehicle.reasons, String).like(f'%"{ReasonCode.NO_OUTLET_IN_DESTINATION.value}"%'), 1))
    demand = session.execute(
        select(
            RequestVehicle.destination,
            RequestVehicle.brand,
            func.count(),
            func.count(refused),
        )
        .join(LetterRequest, LetterRequest.id == RequestVehicle.request_id)
        .where(*scope)
        .group_by(RequestVehicle.destination, RequestVehicle.brand)
    )
    for destination, brand, vehicles, refused_count in demand:
        country = lookup_country(destination or "")
        if country is None:
            continue  # not a destination (refused as DESTINATION_INVALID): no country to chart
        item = entry(country.alpha2)
        item.vehicles += vehicles
        item.refused_no_outlet += refused_count
        if not any(o.serves(country=country.alpha2, brand=brand, on=on) for o in serving.get(country.alpha2, ())):
            item.uncovered += vehicles
            item.uncovered_brand_names.setdefault(normalise_brand(brand), " ".join(brand.split()))
    requests = session.execute(
        select(RequestVehicle.destination, func.count(func.distinct(RequestVehicle.request_id)))
        .join(LetterRequest, LetterRequest.id == RequestVehicle.request_id)
        .where(*scope)
        .group_by(RequestVehicle.destination)
    )
    for destination, count in requests:
        country = lookup_country(destination or "")
        if country is not None:
            # Destinations are stored upper-case; two spellings of one country cannot occur.
            entry(country.alpha2).requests += count
    ordered = sorted(countries.values(), key=lambda c: (-c.vehicles, -c.uncovered, -c.outlets, c.country))
    return CoverageReport(manufacturer=manufacturer, on=on, since=since, countries=ordered)
