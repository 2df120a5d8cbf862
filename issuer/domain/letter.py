"""What a Confirmation Letter holds: the content printed, sealed and later verified.

A letter is immutable once issued; this is the snapshot it is rendered from and the JSON
embedded in its PDF. Pure data: no Flask, no SQL, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from issuer.domain.countries import Country, lookup_country


@dataclass(frozen=True, slots=True)
class Party:
    """The issuer or the addressee: Chinese name, English name, unified social credit code."""

    name: str
    name_en: str
    uscc: str


@dataclass(frozen=True, slots=True)
class LetterVehicle:
    vin: str
    brand: str
    model: str
    registration_date: date


@dataclass(frozen=True, slots=True)
class LetterOutlet:
    """An outlet as it was printed (a snapshot of one outlet version)."""

    code: str
    name: str
    provider: str
    address: str
    city: str
    phone: str
    email: str


@dataclass(frozen=True, slots=True)
class DestinationSection:
    """The vehicles going to one country and the outlets that serve them there."""

    country: Country
    vehicles: tuple[LetterVehicle, ...]
    outlets: tuple[LetterOutlet, ...]


@dataclass(frozen=True, slots=True)
class LetterContent:
    number: str
    verification_code: str
    issued_on: date
    valid_until: date | None
    issuer: Party
    exporter: Party
    destinations: tuple[DestinationSection, ...]
    reference: str = ""
    supersedes: str | None = None  # the number of the letter this one corrects

    @property
    def vehicle_count(self) -> int:
        return sum(len(section.vehicles) for section in self.destinations)

    def as_json(self) -> dict[str, Any]:
        """The content as JSON-ready data (embedded in the PDF and stored with the letter)."""
        return {
            "number": self.number,
            "verification_code": self.verification_code,
            "issued_on": self.issued_on.isoformat(),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "issuer": _party(self.issuer),
            "exporter": _party(self.exporter),
            "reference": self.reference,
            "supersedes": self.supersedes,
            "destinations": [
                {
                    "country": section.country.alpha2,
                    "country_name_zh": section.country.name_zh,
                    "country_name_en": section.country.name_en,
                    "vehicles": [
                        {
                            "vin": v.vin,
                            "brand": v.brand,
                            "model": v.model,
                            "registration_date": v.registration_date.isoformat(),
                        }
                        for v in section.vehicles
                    ],
                    "outlets": [
                        {
                            "code": o.code,
                            "name": o.name,
                            "provider": o.provider,
                            "address": o.address,
                            "city": o.city,
                            "phone": o.phone,
                            "email": o.email,
                        }
                        for o in section.outlets
                    ],
                }
                for section in self.destinations
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LetterContent:
        """Rebuild the content from :meth:`as_json` output."""
        sections = []
        for item in data["destinations"]:
            country = lookup_country(item["country"]) or Country(
                item["country"], item["country_name_zh"], item["country_name_en"]
            )
            sections.append(
                DestinationSection(
                    country=country,
                    vehicles=tuple(
                        LetterVehicle(v["vin"], v["brand"], v["model"], date.fromisoformat(v["registration_date"]))
                        for v in item["vehicles"]
                    ),
                    outlets=tuple(LetterOutlet(**o) for o in item["outlets"]),
                )
            )
        return cls(
            number=data["number"],
            verification_code=data["verification_code"],
            issued_on=date.fromisoformat(data["issued_on"]),
            valid_until=date.fromisoformat(data["valid_until"]) if data.get("valid_until") else None,
            issuer=Party(**data["issuer"]),
            exporter=Party(**data["exporter"]),
            destinations=tuple(sections),
            reference=data.get("reference", ""),
            supersedes=data.get("supersedes"),
        )


def _party(party: Party) -> dict[str, str]:
    return {"name": party.name, "name_en": party.name_en, "uscc": party.uscc}
