"""Which vehicles may, must or need not get a letter, and why (reason codes of the public contract)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from types import MappingProxyType

from issuer.domain.countries import Country, lookup_country
from issuer.domain.outlets import OutletCoverage, normalise_brand
from issuer.domain.vin import Wmi, find_owner, has_valid_check_digit, is_well_formed, normalise_vin


class ReasonCode(StrEnum):
    """Why a vehicle is refused or needs no letter. The order here is the order reasons are listed in."""

    VIN_FORMAT = "VIN_FORMAT"
    VIN_CHECK_DIGIT = "VIN_CHECK_DIGIT"
    VIN_NOT_MANUFACTURER = "VIN_NOT_MANUFACTURER"
    VIN_NOT_IN_REGISTRY = "VIN_NOT_IN_REGISTRY"
    BRAND_MISMATCH = "BRAND_MISMATCH"
    MODEL_MISMATCH = "MODEL_MISMATCH"
    REGISTRATION_DATE_INVALID = "REGISTRATION_DATE_INVALID"
    # Not in the contract's table: the project's documented extension.
    EXPORT_TRANSFER_DATE_INVALID = "EXPORT_TRANSFER_DATE_INVALID"
    DESTINATION_INVALID = "DESTINATION_INVALID"
    NO_OUTLET_IN_DESTINATION = "NO_OUTLET_IN_DESTINATION"
    ALREADY_COVERED = "ALREADY_COVERED"
    DUPLICATE_IN_REQUEST = "DUPLICATE_IN_REQUEST"
    NOT_REQUIRED_BEFORE_2026 = "NOT_REQUIRED_BEFORE_2026"
    EXEMPT_TRANSFERRED_BEFORE_2026 = "EXEMPT_TRANSFERRED_BEFORE_2026"
    NOT_REQUIRED_AFTER_180_DAYS = "NOT_REQUIRED_AFTER_180_DAYS"
    EXPORTER_BLOCKED = "EXPORTER_BLOCKED"
    ISSUER_NOT_ALLOWED = "ISSUER_NOT_ALLOWED"


class Verdict(StrEnum):
    """The outcome for one vehicle."""

    ELIGIBLE = "eligible"
    NOT_REQUIRED = "not_required"
    REFUSED = "refused"


NOT_REQUIRING: frozenset[ReasonCode] = frozenset(
    {
        ReasonCode.NOT_REQUIRED_BEFORE_2026,
        ReasonCode.EXEMPT_TRANSFERRED_BEFORE_2026,
        ReasonCode.NOT_REQUIRED_AFTER_180_DAYS,
    }
)
REFUSING: frozenset[ReasonCode] = frozenset(ReasonCode) - NOT_REQUIRING

REASON_TEXT: Mapping[ReasonCode, tuple[str, str]] = MappingProxyType(
    {
        ReasonCode.VIN_FORMAT: (
            "车辆识别代号格式不正确：应为17位，由数字和除I、O、Q以外的大写英文字母组成。",
            "The VIN must be 17 characters of 0-9 and A-Z without I, O and Q.",
        ),
        ReasonCode.VIN_CHECK_DIGIT: (
            "车辆识别代号第9位校验位不正确。",
            "Position 9 of the VIN (the check digit) is wrong.",
        ),
        ReasonCode.VIN_NOT_MANUFACTURER: (
            "该车辆识别代号的世界制造厂识别代号（WMI）不属于本制造商。",
            "The VIN's world manufacturer identifier (WMI) is not this manufacturer's.",
        ),
        ReasonCode.VIN_NOT_IN_REGISTRY: (
            "本制造商的生产记录中没有该车辆。",
            "The manufacturer's production registry does not list this VIN.",
        ),
        ReasonCode.BRAND_MISMATCH: (
            "申报的品牌与制造商生产记录不一致。",
            "The declared brand differs from the manufacturer's production registry.",
        ),
        ReasonCode.MODEL_MISMATCH: (
            "申报的车型与制造商生产记录不一致。",
            "The declared model differs from the manufacturer's production registry.",
        ),
        ReasonCode.REGISTRATION_DATE_INVALID: (
            "注册登记日期无效：晚于今天或出口许可证申请日期，或早于车辆生产日期。",
            "The registration date is after today or after the application date, or before the vehicle was produced.",
        ),
        ReasonCode.EXPORT_TRANSFER_DATE_INVALID: (
            "转让登记待出口日期无效：晚于今天或早于注册登记日期。",
            "The export transfer registration date is after today or before the registration date.",
        ),
        ReasonCode.DESTINATION_INVALID: (
            "出口目的国无效：应为ISO 3166-1两位字母国家代码；不接受区域组织代码，也不能是中国。",
            "The destination must be an ISO 3166-1 alpha-2 country code; blocs and China itself are not accepted.",
        ),
        ReasonCode.NO_OUTLET_IN_DESTINATION: (
            "目的国没有覆盖该品牌的有效售后维修服务网点。",
            "No active after-sales service outlet in the destination country covers this brand.",
        ),
        ReasonCode.ALREADY_COVERED: (
            "该车辆已有一份有效的确认书，须先撤销或替换原确认书。",
            "A valid letter already covers this VIN; revoke or supersede that letter first.",
        ),
        ReasonCode.DUPLICATE_IN_REQUEST: (
            "该车辆识别代号在本次申请中出现了不止一次。",
            "The VIN appears more than once in this request.",
        ),
        ReasonCode.NOT_REQUIRED_BEFORE_2026: (
            "出口许可证申请日期早于2026年1月1日，规定尚未施行，无需确认书。",
            "The application date is before 1 January 2026, when the rule takes effect: no letter is needed.",
        ),
        ReasonCode.EXEMPT_TRANSFERRED_BEFORE_2026: (
            "已于2026年1月1日前完成转让登记待出口，无需确认书。",
            "The transfer registration for export was completed before 1 January 2026: no letter is needed.",
        ),
        ReasonCode.NOT_REQUIRED_AFTER_180_DAYS: (
            "自注册登记日期至出口许可证申请日期已超过180天，无需确认书。",
            "More than 180 days lie between the registration date and the application date: no letter is needed.",
        ),
        ReasonCode.EXPORTER_BLOCKED: (
            "出口企业已被本制造商列入负面清单，不予出具确认书。",
            "The exporter is on this manufacturer's negative list and gets no letters from it.",
        ),
        ReasonCode.ISSUER_NOT_ALLOWED: (
            "该企业类型无权出具确认书，只有列入工业和信息化部《道路机动车辆生产企业及产品公告》的"
            "整车生产企业可以出具。",
            "This company's type may not issue letters; only vehicle manufacturers listed by MIIT may.",
        ),
    }
)

RULE_IN_FORCE_FROM = date(2026, 1, 1)
WINDOW_DAYS = 180

# Reasons are reported in enum order whatever order the checks found them in.
_REASON_ORDER = {code: index for index, code in enumerate(ReasonCode)}


def letter_not_needed_from(registration_date: date) -> date:
    """Return the first application date on which no letter is needed any more (day 181)."""
    return registration_date + timedelta(days=WINDOW_DAYS + 1)


def window_case(
    *, registration_date: date, application_date: date, export_transfer_date: date | None
) -> tuple[ReasonCode, ...]:
    """Return the not-required codes that apply to sane dates; empty means a letter is required.

    Days are counted without the start day (Civil Code art. 201): registered 2026-01-05,
    an application on 2026-07-04 is day 180 and needs a letter, on 2026-07-05 it does not.
    """
    codes: list[ReasonCode] = []
    if application_date < RULE_IN_FORCE_FROM:
        codes.append(ReasonCode.NOT_REQUIRED_BEFORE_2026)
    # The exemption follows the transfer registration alone, even for a later application.
    if export_transfer_date is not None and export_transfer_date < RULE_IN_FORCE_FROM:
        codes.append(ReasonCode.EXEMPT_TRANSFERRED_BEFORE_2026)
    if (application_date - registration_date).days > WINDOW_DAYS:
        codes.append(ReasonCode.NOT_REQUIRED_AFTER_180_DAYS)
    return tuple(codes)


def verdict_for(reasons: Iterable[ReasonCode]) -> Verdict:
    """Refused if any reason refuses, else not required if any says so, else eligible."""
    found = set(reasons)
    if found & REFUSING:
        return Verdict.REFUSED
    if found & NOT_REQUIRING:
        return Verdict.NOT_REQUIRED
    return Verdict.ELIGIBLE


@dataclass(frozen=True, slots=True)
class VehicleDeclaration:
    """One vehicle as the exporter declares it, raw as sent."""

    vin: str
    brand: str
    model: str
    registration_date: date
    destination: str
    export_transfer_date: date | None = None


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """What the manufacturer's production registry says about one VIN."""

    brand: str
    model: str
    production_date: date | None


@dataclass(frozen=True, slots=True)
class IssuerProfile:
    """The manufacturer asked to issue: its WMIs and what it may do."""

    code: str
    wmis: tuple[Wmi, ...]
    may_issue: bool
    keeps_registry: bool


@dataclass(frozen=True, slots=True)
class AssessmentContext:
    """Everything besides the declarations that the rules look at; `today` is China time."""

    issuer: IssuerProfile
    today: date
    application_date: date
    registry: Mapping[str, RegistryEntry]  # normalised VIN -> entry; only this request's VINs needed
    outlets: tuple[OutletCoverage, ...]
    covered_vins: frozenset[str] = frozenset()
    exporter_blocked: bool = False


@dataclass(frozen=True, slots=True)
class VehicleAssessment:
    """The verdict on one vehicle with every reason that applies."""

    vin: str  # normalised
    verdict: Verdict
    reasons: tuple[ReasonCode, ...]  # in ReasonCode order, no duplicates
    letter_required: bool  # the 180-day window says a letter is needed (dates sane, no not-required code)
    letter_not_needed_from: date | None  # set whenever letter_required
    destination: Country | None


@dataclass(frozen=True, slots=True)
class Warning:
    """Something the exporter should know that refuses nothing."""

    code: str
    message: str
    details: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Assessment:
    """The answer for a whole request."""

    vehicles: tuple[VehicleAssessment, ...]
    warnings: tuple[Warning, ...]


class _OutletIndex:
    """Outlets grouped by country, with answers remembered per (country, brand)."""

    def __init__(self, outlets: Iterable[OutletCoverage], on: date) -> None:
        self._on = on
        self._by_country: defaultdict[str, list[OutletCoverage]] = defaultdict(list)
        for outlet in outlets:
            self._by_country[outlet.country.upper()].append(outlet)
        self._answers: dict[tuple[str, str], bool] = {}

    def serves(self, country: str, brand: str) -> bool:
        key = (country, normalise_brand(brand))
        answer = self._answers.get(key)
        if answer is None:
            answer = any(
                outlet.serves(country=country, brand=brand, on=self._on) for outlet in self._by_country.get(country, ())
            )
            self._answers[key] = answer
        return answer


def _assess_vehicle(
    declaration: VehicleDeclaration,
    vin: str,
    context: AssessmentContext,
    issuer_wmis: Mapping[Wmi, bool],
    outlets: _OutletIndex,
    duplicated: bool,
) -> VehicleAssessment:
    reasons: set[ReasonCode] = set()
    issuer = context.issuer
    entry: RegistryEntry | None = None

    if not is_well_formed(vin):
        reasons.add(ReasonCode.VIN_FORMAT)
    else:
        # A wrong check digit is often a typo elsewhere in the VIN, so the WMI and registry
        # answers are still given: they help the exporter find which character is wrong.
        if not has_valid_check_digit(vin):
            reasons.add(ReasonCode.VIN_CHECK_DIGIT)
        if find_owner(vin, issuer_wmis) is None:
            reasons.add(ReasonCode.VIN_NOT_MANUFACTURER)
        entry = context.registry.get(vin)
        if issuer.keeps_registry:
            if entry is None:
                reasons.add(ReasonCode.VIN_NOT_IN_REGISTRY)
            else:
                if normalise_brand(entry.brand) != normalise_brand(declaration.brand):
                    reasons.add(ReasonCode.BRAND_MISMATCH)
                if normalise_brand(entry.model) != normalise_brand(declaration.model):
                    reasons.add(ReasonCode.MODEL_MISMATCH)

    registration_date = declaration.registration_date
    production_date = entry.production_date if entry is not None else None
    registration_sane = not (
        registration_date > context.today
        or registration_date > context.application_date
        or (production_date is not None and registration_date < production_date)
    )
    if not registration_sane:
        reasons.add(ReasonCode.REGISTRATION_DATE_INVALID)

    transfer_date = declaration.export_transfer_date
    transfer_sane = transfer_date is None or not (transfer_date > context.today or transfer_date < registration_date)
    if not transfer_sane:
        reasons.add(ReasonCode.EXPORT_TRANSFER_DATE_INVALID)

    destination = lookup_country(declaration.destination)
    if destination is None:
        reasons.add(ReasonCode.DESTINATION_INVALID)
    elif not outlets.serves(destination.alpha2, declaration.brand):
        reasons.add(ReasonCode.NO_OUTLET_IN_DESTINATION)

    if vin in context.covered_vins:
        reasons.add(ReasonCode.ALREADY_COVERED)
    if duplicated:
        reasons.add(ReasonCode.DUPLICATE_IN_REQUEST)

    if registration_sane:
        window = window_case(
            registration_date=registration_date,
            application_date=context.application_date,
            export_transfer_date=transfer_date if transfer_sane else None,
        )
    elif context.application_date < RULE_IN_FORCE_FROM:
        # Before the rule is in force nothing else matters, odd dates or not.
        window = (ReasonCode.NOT_REQUIRED_BEFORE_2026,)
    else:
        window = ()
    reasons.update(window)
    letter_required = registration_sane and transfer_sane and not window

    if context.exporter_blocked:
        reasons.add(ReasonCode.EXPORTER_BLOCKED)
    if not issuer.may_issue:
        reasons.add(ReasonCode.ISSUER_NOT_ALLOWED)

    ordered = tuple(sorted(reasons, key=_REASON_ORDER.__getitem__))
    return VehicleAssessment(
        vin=vin,
        verdict=verdict_for(ordered),
        reasons=ordered,
        letter_required=letter_required,
        letter_not_needed_from=letter_not_needed_from(registration_date) if letter_required else None,
        destination=destination,
    )


def _destination_warnings(vehicles: Iterable[VehicleAssessment]) -> tuple[Warning, ...]:
    countries = sorted({vehicle.destination.alpha2 for vehicle in vehicles if vehicle.destination})
    if len(countries) <= 1:
        return ()
    return (
        Warning(
            code="MULTIPLE_DESTINATIONS",
            message=(
                f"The vehicles go to {len(countries)} countries ({', '.join(countries)}). "
                "An export license names one importing country, so one license per country is needed."
            ),
            details={"countries": countries},
        ),
    )


def assess(vehicles: Sequence[VehicleDeclaration], context: AssessmentContext) -> Assessment:
    """Assess every vehicle of a request for one issuer, listing all reasons that apply to each."""
    vins = [normalise_vin(declaration.vin) for declaration in vehicles]
    # Only well-formed VINs count as duplicates: two different typos are not the same vehicle.
    occurrences = Counter(vin for vin in vins if is_well_formed(vin))
    issuer_wmis = dict.fromkeys(context.issuer.wmis, True)
    # Outlets count when active on the day of the check, which is the day of issue.
    outlets = _OutletIndex(context.outlets, context.today)
    assessed = tuple(
        _assess_vehicle(declaration, vin, context, issuer_wmis, outlets, occurrences[vin] > 1)
        for declaration, vin in zip(vehicles, vins, strict=True)
    )
    return Assessment(vehicles=assessed, warnings=_destination_warnings(assessed))


@dataclass(frozen=True, slots=True)
class ManufacturerWmis:
    """A hosted manufacturer and the WMIs it holds, for splitting a mixed list of VINs."""

    code: str
    wmis: tuple[Wmi, ...]


def split_by_manufacturer(
    vins: Sequence[str], manufacturers: Sequence[ManufacturerWmis]
) -> tuple[dict[str, list[int]], list[tuple[int, ReasonCode]]]:
    """Group VINs by the hosted manufacturer whose WMI they carry (one letter per manufacturer).

    Returns manufacturer code -> indexes into `vins` (in order; only manufacturers with VINs),
    and the unassigned (index, reason): VIN_FORMAT for a malformed VIN, VIN_NOT_MANUFACTURER
    when no hosted manufacturer holds its WMI. Should two manufacturers be given the same
    WMI, the first one listed gets the VINs.
    """
    owners: dict[Wmi, str] = {}
    for manufacturer in manufacturers:
        for wmi in manufacturer.wmis:
            owners.setdefault(wmi, manufacturer.code)
    groups: dict[str, list[int]] = {}
    unassigned: list[tuple[int, ReasonCode]] = []
    for index, raw in enumerate(vins):
        vin = normalise_vin(raw)
        if not is_well_formed(vin):
            unassigned.append((index, ReasonCode.VIN_FORMAT))
            continue
        owner = find_owner(vin, owners)
        if owner is None:
            unassigned.append((index, ReasonCode.VIN_NOT_MANUFACTURER))
        else:
            groups.setdefault(owner, []).append(index)
    return groups, unassigned
