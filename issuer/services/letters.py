"""Use cases of letters: decide a request (which issues the letter), complete (render and seal),
revoke, read, and verify.

Issuance is two steps. ``decide_request`` records the decision and reserves the letter — its
number, its content snapshot and the VINs it covers — in one transaction, as a ``pending``
letter. ``complete_letter`` renders, seals and stores the PDF, and only then is the letter
``valid``. A crash in between leaves a pending letter that nobody sees and that the next attempt
(the same decision call again) completes with the same number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer, joinedload, selectinload, undefer

from issuer import clock
from issuer.domain.countries import lookup_country
from issuer.domain.eligibility import ReasonCode, VehicleAssessment, VehicleDeclaration, Verdict, assess
from issuer.domain.letter import DestinationSection, LetterContent, LetterOutlet, LetterVehicle, Party
from issuer.domain.outlets import normalise_brand
from issuer.domain.vin import normalise_vin
from issuer.errors import Conflict, Forbidden, NotFound, ValidationFailed
from issuer.models import (
    CoveredVin,
    Letter,
    LetterRequest,
    LetterSequence,
    LetterStatus,
    Manufacturer,
    Outlet,
    OutletVersion,
    RequestStatus,
    Role,
    SealKey,
    User,
)
from issuer.models import LetterOutlet as LetterOutletRow
from issuer.models import LetterVehicle as LetterVehicleRow
from issuer.rendering.pdf import MissingGlyphs, RenderingError, SealMark, render_letter
from issuer.sealing.check import SignatureCheck, TrustedKey, check_pdf
from issuer.sealing.keys import KeyMaterialError, read_private_key
from issuer.sealing.signer import Sealer, SealingError, SigningKey
from issuer.services import audit
from issuer.services.coverage import release_expired
from issuer.services.keys import certificate_of, current_key
from issuer.services.requests import assessment_context, get_request
from issuer.services.scoping import scoped

ATTACHMENT_NAME = "letter.json"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by hand
CODE_GROUPS = 4
MAX_REASON_CHARS = 500
# One letter's rendering peaks near 900 MB at 5,000 vehicles (bench/issue_letter.py); a bigger
# approval is refused with a clear message instead of risking the 1 GB memory budget.
MAX_LETTER_VEHICLES = 5_000


@dataclass(frozen=True)
class Issuance:
    """What issuing needs besides the database: where keys are, how to seal, the public URL."""

    keys_dir: Path
    passphrase: str
    public_url: str
    sealer: Sealer

    def verify_url(self, number: str, code: str) -> str:
        return f"{self.public_url}/verify/{number}?code={code}"


# -- numbers and codes -------------------------------------------------------------------------


def new_verification_code() -> str:
    """16 random characters (80 bits) in groups of four, e.g. ``K7QM-2XPD-9HTR-WC4N``."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(4 * CODE_GROUPS))
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def _canonical_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").upper()


def codes_match(expected: str, given: str) -> bool:
    """Compare in constant time; dashes, spaces and case do not matter."""
    return hmac.compare_digest(_canonical_code(expected).encode(), _canonical_code(given).encode())


def allocate_number(session: Session, manufacturer: Manufacturer, year: int) -> str:
    """The next letter number of the manufacturer for the year, e.g. ``DYAUTO-2026-000042``.

    The counter row is created if missing, then incremented with UPDATE … RETURNING, which
    takes a row lock on PostgreSQL: concurrent issuers queue on it and never share a number.
    A number whose issuance fails is not reused (the gap is harmless; reuse would not be).
    """
    dialect = session.get_bind().dialect.name
    values = {"manufacturer_id": manufacturer.id, "year": year, "last_serial": 0}
    if dialect == "postgresql":
        session.execute(pg_insert(LetterSequence).values(**values).on_conflict_do_nothing())
    else:
        session.execute(sqlite_insert(LetterSequence).values(**values).on_conflict_do_nothing())
    serial = session.execute(
        update(LetterSequence)
        .where(LetterSequence.manufacturer_id == manufacturer.id, LetterSequence.year == year)
        .values(last_serial=LetterSequence.last_serial + 1)
        .returning(LetterSequence.last_serial)
    ).scalar_one()
    return f"{manufacturer.code}-{year}-{serial:06d}"


def manufacturer_code_of(number: str) -> str:
    """The manufacturer code a letter number starts with (numbers are CODE-YYYY-NNNNNN)."""
    return number.rsplit("-", 2)[0]


# -- status ------------------------------------------------------------------------------------


def public_status(letter: Letter, today: dt.date) -> str:
    """valid | revoked | superseded | expired, as verification reports it."""
    return _public_status(letter.status, letter.valid_until, today)


def _public_status(status: str, valid_until: dt.date | None, today: dt.date) -> str:
    if status in (LetterStatus.REVOKED, LetterStatus.SUPERSEDED):
        return status
    if valid_until is not None and valid_until < today:
        return "expired"
    return status


@dataclass(frozen=True)
class LetterStamp:
    """An issued letter's id and number with everything of it that can change after issuance:
    whether an answer made earlier about the letter still holds. (Its content snapshot and the
    codes of its manufacturer, exporter and seal key never change.)"""

    id: int
    number: str
    status: str  # the public status (public_status) on the day the stamp was taken
    issued_at: dt.datetime | None
    valid_until: dt.date | None
    pdf_sha256: str | None
    page_count: int | None
    seal_key_id: int | None
    revoked_at: dt.datetime | None
    revoked_by: str | None
    revocation_reason: str | None
    superseded_by_id: int | None

    @classmethod
    def of(cls, letter: Any, today: dt.date) -> LetterStamp:
        """The stamp of a Letter, or of a row holding the columns of ``_STAMP_COLUMNS``."""
        return cls(
            id=letter.id,
            number=letter.number,
            status=_public_status(letter.status, letter.valid_until, today),
            issued_at=letter.issued_at,
            valid_until=letter.valid_until,
            pdf_sha256=letter.pdf_sha256,
            page_count=letter.page_count,
            seal_key_id=letter.seal_key_id,
            revoked_at=letter.revoked_at,
            revoked_by=letter.revoked_by,
            revocation_reason=letter.revocation_reason,
            superseded_by_id=letter.superseded_by_id,
        )


# -- decision ----------------------------------------------------------------------------------


@dataclass
class Decision:
    request: LetterRequest
    letter: Letter | None
    approved: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    # With a job queue: the job that will seal ``letter`` (then still pending), else None.
    job: Any = None


# Called in the decision's transaction with the reserved (pending) letter, to hand its sealing
# to a worker (issuer.services.issuance_jobs.create_job); answers the job.
QueueJob = Callable[[Session, Letter], Any]


def _staff_request(session: Session, user: User, request_id: int, *, lock: bool) -> LetterRequest:
    if user.user_role is not Role.AFTERSALES:
        raise Forbidden(f"the role {user.role} may not decide requests")
    request = get_request(session=session, user=user, request_id=request_id)
    if lock:
        # Serialise concurrent decisions on one request (PostgreSQL row lock; SQLite has one writer).
        session.execute(select(LetterRequest.id).where(LetterRequest.id == request.id).with_for_update())
        session.refresh(request)
    return request


def decide_request(
    *,
    session: Session,
    user: User,
    request_id: int,
    approve: Sequence[str] | Literal["all_eligible"],
    reject: Sequence[tuple[str, str]],
    note: str,
    issuance: Issuance,
    valid_until: dt.date | None = None,
    queue_job: QueueJob | None = None,
) -> Decision:
    """Approve and reject vehicles of a submitted request; approving issues one letter.

    Verdicts are recomputed now: outlets, the registry or other letters may have changed since
    the request was filed. A vehicle refused now cannot be approved; a ``not_required`` one can be
    approved by name (the manufacturer may choose to cover it), never by ``all_eligible``.
    Calling again after a crash completes the pending letter; calling again after success is a
    conflict.

    With ``queue_job``, it is called with the reserved letter in the same transaction; when it
    answers a job, the letter is left pending for a worker to seal and the decision returns the
    pending letter and the job (when it answers None, the letter is sealed here).
    """
    request = _staff_request(session, user, request_id, lock=True)
    if request.status != RequestStatus.SUBMITTED:
        pending = pending_letter_of(session=session, request_id=request.id)
        if pending is not None:
            job = queue_job(session, pending) if queue_job is not None else None
            if job is not None:
                session.commit()
                return Decision(request=request, letter=pending, job=job)
            letter = complete_letter(session=session, letter_id=pending.id, issuance=issuance)
            return Decision(request=request, letter=letter)
        raise Conflict(
            f"request {request.id} was already decided ({request.status})", details={"status": request.status}
        )

    by_vin = {v.vin: v for v in request.vehicles}
    rejected = {normalise_vin(vin): " ".join(reason.split()) for vin, reason in reject}
    problems: list[dict[str, Any]] = []
    for vin, reason in rejected.items():
        if vin not in by_vin:
            problems.append({"vin": vin, "message": "not in this request"})
        elif not reason:
            problems.append({"vin": vin, "message": "a rejection needs a reason"})
        elif len(reason) > MAX_REASON_CHARS:
            problems.append({"vin": vin, "message": f"the reason is longer than {MAX_REASON_CHARS} characters"})

    today = clock.today_in_china()
    superseded = _superseded_letter(session, request) if request.supersedes_number else None
    verdicts = verdicts_today(session, request, today=today, superseded=superseded)

    if approve == "all_eligible":
        approved = [
            v.vin for v in request.vehicles if verdicts[v.vin].verdict is Verdict.ELIGIBLE and v.vin not in rejected
        ]
    else:
        approved = []
        for raw in approve:
            vin = normalise_vin(raw)
            if vin not in by_vin:
                problems.append({"vin": vin, "message": "not in this request"})
            elif vin in rejected:
                problems.append({"vin": vin, "message": "both approved and rejected"})
            elif verdicts[vin].verdict is Verdict.REFUSED:
                reasons = [r.value for r in verdicts[vin].reasons]
                problems.append({"vin": vin, "message": "refused today: " + ", ".join(reasons), "reasons": reasons})
            elif vin not in approved:
                approved.append(vin)
    if problems:
        shown = "; ".join(f"{p['vin']}: {p['message']}" for p in problems[:5])
        raise ValidationFailed(f"the decision cannot be applied: {shown}", details=problems)
    if len(approved) > MAX_LETTER_VEHICLES:
        raise ValidationFailed(
            f"one letter holds at most {MAX_LETTER_VEHICLES:,} vehicles; {len(approved):,} were approved — "
            "approve them in parts (split the request) so each letter stays printable",
            details={"approved": len(approved), "limit": MAX_LETTER_VEHICLES},
        )
    if not approved and not rejected:
        if approve == "all_eligible":
            raise ValidationFailed(
                "no vehicle of this request is eligible today; reject them with a reason instead",
                details=[{"vin": vin, "reasons": [r.value for r in verdicts[vin].reasons]} for vin in by_vin],
            )
        raise ValidationFailed("nothing to decide: approve or reject at least one vehicle")

    now = clock.now_utc()
    approved_set = set(approved)
    for vehicle in request.vehicles:
        if vehicle.vin in approved_set:
            vehicle.decision, vehicle.decision_reason = "approved", None
        elif vehicle.vin in rejected:
            vehicle.decision, vehicle.decision_reason = "rejected", rejected[vehicle.vin]
        else:
            vehicle.decision, vehicle.decision_reason = "not_approved", None
    request.status = RequestStatus.APPROVED.value if approved else RequestStatus.REJECTED.value
    request.decided_at, request.decided_by = now, user.email
    request.decision_note = " ".join(note.split()) or None

    letter = job = None
    if approved and current_key(session, request.manufacturer) is None:
        raise Conflict(f"{request.manufacturer.code} has no seal key yet; generate one first (issuer keys generate)")
    try:
        if approved:
            letter = _reserve_letter(
                session,
                request=request,
                vins=approved,
                today=today,
                actor=user.email,
                valid_until=valid_until,
                superseded=superseded,
            )
            if queue_job is not None:
                job = queue_job(session, letter)
        audit.record(
            session,
            action="request.decided",
            object_type="request",
            object_id=request.id,
            actor=user.email,
            manufacturer_id=request.manufacturer_id,
            exporter_id=request.exporter_id,
            details={
                "status": request.status,
                "approved": len(approved),
                "rejected": len(rejected),
                "note": request.decision_note,
                "letter": letter.number if letter is not None else None,
            },
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "another letter took some of these VINs meanwhile (ALREADY_COVERED); reload the request",
            details={"reason": ReasonCode.ALREADY_COVERED.value},
        ) from None
    if letter is not None and job is None:
        letter = complete_letter(session=session, letter_id=letter.id, issuance=issuance)
    return Decision(request=request, letter=letter, approved=approved, rejected=list(rejected), job=job)


def verdicts_today(
    session: Session, request: LetterRequest, *, today: dt.date, superseded: Letter | None
) -> dict[str, VehicleAssessment]:
    """The verdict of each of the request's vehicles if it were decided today (by VIN): outlets,
    the registry, other letters and the negative list may have changed since it was filed."""
    declarations = [
        VehicleDeclaration(
            vin=v.vin,
            brand=v.brand,
            model=v.model,
            registration_date=v.registration_date,
            destination=v.destination,
            export_transfer_date=v.export_transfer_date,
        )
        for v in request.vehicles
    ]
    context = assessment_context(
        session,
        manufacturer=request.manufacturer,
        exporter=request.exporter,
        vehicles=declarations,
        application_date=request.application_date,
        today=today,
        ignore_letter_id=superseded.id if superseded else None,
    )
    return {v.vin: v for v in assess(declarations, context).vehicles}


def outlets_to_print(
    session: Session, *, manufacturer: Manufacturer, vehicles: Iterable[tuple[str, str]], today: dt.date
) -> dict[str, list[Outlet]]:
    """The outlets a letter issued today prints for these (destination, brand) pairs: per
    destination, those active today that serve a brand going there, ordered by code."""
    brands_by_country: dict[str, set[str]] = defaultdict(set)
    for destination, brand in vehicles:
        brands_by_country[destination].add(normalise_brand(brand))
    outlets = session.scalars(
        select(Outlet)
        .where(Outlet.manufacturer_id == manufacturer.id, Outlet.country.in_(list(brands_by_country)))
        .order_by(Outlet.country, Outlet.code)
    ).all()
    printed: dict[str, list[Outlet]] = defaultdict(list)
    for outlet in outlets:
        coverage = outlet.coverage(outlet.code)
        if any(coverage.serves(country=outlet.country, brand=b, on=today) for b in brands_by_country[outlet.country]):
            printed[outlet.country].append(outlet)
    return printed


@dataclass(frozen=True)
class RequestReview:
    """What the reviewer of a submitted request needs besides the request: each vehicle's
    verdict today, and per destination the outlets a letter for the vehicles approvable today
    would print. ``problem`` says why the request cannot be decided as it stands, if so."""

    verdicts: dict[str, VehicleAssessment]
    outlets: dict[str, list[Outlet]]
    problem: str | None = None


def review_request(*, session: Session, user: User, request_id: int) -> RequestReview:
    """Verdicts and printed outlets as ``decide_request`` would compute them now (reads only)."""
    request = get_request(session=session, user=user, request_id=request_id)
    today = clock.today_in_china()
    problem = None
    superseded = None
    if request.supersedes_number:
        try:
            superseded = _superseded_letter(session, request)
        except (ValidationFailed, Conflict) as exc:
            problem = exc.message
    verdicts = verdicts_today(session, request, today=today, superseded=superseded)
    approvable = [(v.destination, v.brand) for v in request.vehicles if verdicts[v.vin].verdict is not Verdict.REFUSED]
    outlets = outlets_to_print(session, manufacturer=request.manufacturer, vehicles=approvable, today=today)
    return RequestReview(verdicts=verdicts, outlets=dict(outlets), problem=problem)


def letter_numbers_of_requests(*, session: Session, request_ids: Sequence[int]) -> dict[int, str]:
    """The number of the issued letter of each request that has one (a pending one is nobody's)."""
    if not request_ids:
        return {}
    rows = session.execute(
        select(Letter.request_id, Letter.number).where(
            Letter.request_id.in_(list(request_ids)), Letter.status != LetterStatus.PENDING.value
        )
    )
    return {request_id: number for request_id, number in rows if request_id is not None}


def pending_letter_of(*, session: Session, request_id: int) -> Letter | None:
    """The request's letter whose issuance has not finished (reserved, not yet sealed), if any.

    Nobody sees a pending letter as a letter; the request's page shows that it is being issued,
    and after-sales can finish it (``decide_request`` again completes it with the same number)."""
    return session.scalar(
        select(Letter).where(Letter.request_id == request_id, Letter.status == LetterStatus.PENDING.value)
    )


def _superseded_letter(session: Session, request: LetterRequest) -> Letter:
    letter = session.scalar(select(Letter).where(Letter.number == request.supersedes_number))
    if letter is None or letter.manufacturer_id != request.manufacturer_id or letter.exporter_id != request.exporter_id:
        raise ValidationFailed(
            f"letter {request.supersedes_number} is not one of this exporter's letters from this manufacturer"
        )
    if letter.status != LetterStatus.VALID.value:
        raise Conflict(f"letter {letter.number} is {letter.status}; only a valid letter can be superseded")
    return letter


def _reserve_letter(
    session: Session,
    *,
    request: LetterRequest,
    vins: Sequence[str],
    today: dt.date,
    actor: str,
    valid_until: dt.date | None,
    superseded: Letter | None,
) -> Letter:
    manufacturer = request.manufacturer
    wanted = set(vins)
    chosen = [v for v in request.vehicles if v.vin in wanted]
    if valid_until is None and manufacturer.letter_validity_days is not None:
        valid_until = today + dt.timedelta(days=manufacturer.letter_validity_days)
    if valid_until is not None and valid_until < today:
        raise ValidationFailed(f"valid_until {valid_until} is before today {today}")

    # The outlets printed: per destination, those active today that serve a brand going there.
    printed = outlets_to_print(
        session, manufacturer=manufacturer, vehicles=[(v.destination, v.brand) for v in chosen], today=today
    )
    destinations = {v.destination for v in chosen}
    versions = {
        (v.outlet_id, v.version): v
        for v in session.scalars(
            select(OutletVersion).where(
                OutletVersion.outlet_id.in_([o.id for group in printed.values() for o in group])
            )
        )
    }

    number = allocate_number(session, manufacturer, today.year)
    code = new_verification_code()
    sections = []
    for country_code in sorted(destinations, key=lambda c: lookup_country(c).name_en if lookup_country(c) else c):
        country = lookup_country(country_code)
        assert country is not None  # a refused destination cannot be approved  # noqa: S101
        sections.append(
            DestinationSection(
                country=country,
                vehicles=tuple(
                    LetterVehicle(v.vin, v.brand, v.model, v.registration_date)
                    for v in chosen
                    if v.destination == country_code
                ),
                outlets=tuple(
                    LetterOutlet(o.code, o.name, o.provider, o.address, o.city, o.phone, o.email)
                    for o in printed[country_code]
                ),
            )
        )
    content = LetterContent(
        number=number,
        verification_code=code,
        issued_on=today,
        valid_until=valid_until,
        issuer=Party(manufacturer.name, manufacturer.name_en, manufacturer.uscc),
        exporter=Party(request.exporter.name, request.exporter.name_en, request.exporter.uscc),
        destinations=tuple(sections),
        reference=request.reference,
        supersedes=superseded.number if superseded else None,
    )
    letter = Letter(
        number=number,
        verification_code=code,
        manufacturer_id=manufacturer.id,
        exporter_id=request.exporter_id,
        request_id=request.id,
        status=LetterStatus.PENDING.value,
        issued_on=today,
        valid_until=valid_until,
        content=content.as_json(),
        created_at=clock.now_utc(),
        created_by=actor,
        supersedes_id=superseded.id if superseded else None,
    )
    position = 0
    for section in sections:
        for vehicle in section.vehicles:
            letter.vehicles.append(
                LetterVehicleRow(
                    position=position,
                    vin=vehicle.vin,
                    brand=vehicle.brand,
                    model=vehicle.model,
                    registration_date=vehicle.registration_date,
                    destination=section.country.alpha2,
                )
            )
            position += 1
    for country_code, group in printed.items():
        for outlet in group:
            letter.outlets.append(
                LetterOutletRow(outlet_version_id=versions[(outlet.id, outlet.version)].id, destination=country_code)
            )
    session.add(letter)
    session.flush()

    # Claim the VINs. The primary key of covered_vins refuses a VIN another letter holds.
    release_expired(session, vins, today=today)
    if superseded is not None:
        session.execute(delete(CoveredVin).where(CoveredVin.letter_id == superseded.id))
    session.execute(
        insert(CoveredVin),
        [{"vin": vin, "letter_id": letter.id, "valid_until": valid_until} for vin in vins],
    )
    return letter


# -- completion: render, seal, store ------------------------------------------------------------


def signing_key_for(session: Session, manufacturer: Manufacturer, issuance: Issuance) -> tuple[SealKey, SigningKey]:
    record = current_key(session, manufacturer)
    if record is None:
        raise Conflict(f"{manufacturer.code} has no seal key; generate one first (issuer keys generate)")
    certificate = certificate_of(record)
    chain = tuple(_certificates(record.chain_pem))
    private_key = read_private_key(issuance.keys_dir / record.key_file, passphrase=issuance.passphrase)
    return record, SigningKey(kid=record.kid, private_key=private_key, certificate=certificate, chain=chain)


def _certificates(pem: str) -> list[Any]:
    from cryptography import x509

    return x509.load_pem_x509_certificates(pem.encode("ascii")) if pem.strip() else []


def complete_letter(*, session: Session, letter_id: int, issuance: Issuance) -> Letter:
    """Render, seal and store a pending letter; a valid letter is returned as it is.

    One letter is rendered by one caller at a time. On PostgreSQL the pending letter's row stays
    locked while it is rendered and sealed, so a second caller (a double click, a retry) waits
    and then finds the letter issued instead of rendering it again (a big letter peaks near
    900 MB); only that row is locked. On SQLite, whose single writer such a transaction would
    hold for seconds, no transaction is held while rendering, and the row is checked again
    before the PDF is stored. If the letter cannot be printed or sealed — a character no font
    has, an unusable seal key — the reservation is undone (:func:`abandon_letter`) and a clear
    error raised, so nothing stays blocked.
    """
    letter = _locked_letter(session, letter_id)
    if letter is None:
        raise NotFound(f"no letter {letter_id}")
    if letter.status != LetterStatus.PENDING.value:
        session.commit()
        return letter
    manufacturer = letter.manufacturer
    content = LetterContent.from_json(letter.content)
    number, code, seal_image, signer_name = (
        letter.number,
        letter.verification_code,
        manufacturer.seal_image,
        manufacturer.name,
    )
    try:
        record, signing_key = signing_key_for(session, manufacturer, issuance)
        kid, algorithm, key_row_id = record.kid, record.algorithm, record.id
        if session.get_bind().dialect.name != "postgresql":
            session.commit()  # end the read transaction before the slow part
        rendered = render_letter(
            content,
            verify_url=issuance.verify_url(number, code),
            seal=SealMark(kid=kid, algorithm=algorithm, image_png=seal_image),
        )
        attachment = json.dumps(content.as_json(), ensure_ascii=False, sort_keys=True).encode("utf-8")
        now = clock.now_utc()
        pdf = issuance.sealer.seal(
            rendered.pdf,
            key=signing_key,
            attachment=attachment,
            attachment_name=ATTACHMENT_NAME,
            signer_name=signer_name,
            reason=f"售后维修服务确认书 {number} / After-sales Maintenance Service Confirmation Letter",
            location="CN",
            signing_time=now,
        )
    except MissingGlyphs as exc:
        abandon_letter(session, letter_id, reason="missing glyphs")
        characters = "".join(sorted(set(getattr(exc, "characters", "") or "")))
        raise ValidationFailed(
            f"the letter cannot be printed: no installed font has the character(s) {characters!r}; "
            "correct the brand, model or names that contain them and decide again",
            details={"characters": list(characters)},
        ) from None
    except (RenderingError, SealingError, KeyMaterialError) as exc:
        abandon_letter(session, letter_id, reason=f"{type(exc).__name__}: {exc}")
        raise Conflict(f"the letter cannot be sealed: {exc}") from None

    letter = _locked_letter(session, letter_id)
    if letter is None:
        raise NotFound(f"no letter {letter_id}")
    if letter.status != LetterStatus.PENDING.value:
        session.commit()
        return letter  # another worker finished it meanwhile
    letter.pdf = pdf
    letter.pdf_sha256 = hashlib.sha256(pdf).hexdigest()
    letter.page_count = rendered.page_count
    letter.seal_key_id = key_row_id
    letter.sealer = issuance.sealer.name
    letter.issued_at = now
    letter.status = LetterStatus.VALID.value
    tenant = {"manufacturer_id": letter.manufacturer_id, "exporter_id": letter.exporter_id}
    if letter.supersedes_id is not None:
        old = session.get(Letter, letter.supersedes_id)
        if old is not None and old.status == LetterStatus.VALID.value:
            old.status = LetterStatus.SUPERSEDED.value
            old.superseded_by_id = letter.id
            old.revoked_at = now
            old.revoked_by = letter.created_by
            old.revocation_reason = f"superseded by {letter.number}"
            session.execute(delete(CoveredVin).where(CoveredVin.letter_id == old.id))
            audit.record(
                session,
                action="letter.superseded",
                object_type="letter",
                object_id=old.number,
                actor=letter.created_by,
                details={"superseded_by": letter.number},
                **tenant,
            )
    # The decider is the actor of the issue, also when a later call completes the pending letter.
    audit.record(
        session,
        action="letter.issued",
        object_type="letter",
        object_id=letter.number,
        actor=letter.created_by,
        details={
            "request": letter.request_id,
            "vehicles": content.vehicle_count,
            "valid_until": letter.valid_until,
            "supersedes": content.supersedes,
            "pages": letter.page_count,
            "pdf_sha256": letter.pdf_sha256,
        },
        **tenant,
    )
    audit.record(
        session,
        action="key.used",
        object_type="key",
        object_id=kid,
        actor=letter.created_by,
        manufacturer_id=letter.manufacturer_id,
        details={"letter": letter.number, "algorithm": algorithm, "sealer": letter.sealer},
    )
    session.commit()
    return letter


def _locked_letter(session: Session, letter_id: int) -> Letter | None:
    """The letter as stored now, its row locked until the transaction ends (PostgreSQL; SQLite
    has one writer). Read afresh: the session may hold the row as it was before the lock."""
    return session.scalar(
        select(Letter).where(Letter.id == letter_id).with_for_update().execution_options(populate_existing=True)
    )


def abandon_letter(session: Session, letter_id: int, *, reason: str = "") -> None:
    """Undo a pending letter's reservation: its VINs are free again (or back with the letter
    it was to supersede), the request returns to ``submitted`` undecided, the letter row goes.
    Its number is never reused: the counter has moved on."""
    session.rollback()
    letter = _locked_letter(session, letter_id)
    if letter is None or letter.status != LetterStatus.PENDING.value:
        return
    session.execute(delete(CoveredVin).where(CoveredVin.letter_id == letter.id))
    if letter.supersedes_id is not None:
        old = session.get(Letter, letter.supersedes_id)
        if old is not None and old.status == LetterStatus.VALID.value:
            session.execute(delete(CoveredVin).where(CoveredVin.vin.in_([v.vin for v in old.vehicles])))
            session.execute(
                insert(CoveredVin),
                [{"vin": v.vin, "letter_id": old.id, "valid_until": old.valid_until} for v in old.vehicles],
            )
    if letter.request_id is not None:
        request = session.get(LetterRequest, letter.request_id)
        if request is not None:
            request.status = RequestStatus.SUBMITTED.value
            request.decided_at = request.decided_by = request.decision_note = None
            for vehicle in request.vehicles:
                vehicle.decision = vehicle.decision_reason = None
    number, request_id = letter.number, letter.request_id
    tenant = {"manufacturer_id": letter.manufacturer_id, "exporter_id": letter.exporter_id}
    session.delete(letter)
    # Recorded on the request: the pending letter was never visible, the request's reopening is.
    audit.record(
        session,
        action="request.reopened",
        object_type="request",
        object_id=request_id if request_id is not None else number,
        details={"letter": number, "reason": reason[:300]},
        **tenant,
    )
    session.commit()


# -- reading and revoking ----------------------------------------------------------------------


def _visible_letters(user: User) -> Any:
    """Issued letters this user may see (a pending letter is nobody's yet)."""
    return scoped(
        select(Letter).where(Letter.status != LetterStatus.PENDING.value),
        user,
        manufacturer_column=Letter.manufacturer_id,
        exporter_column=Letter.exporter_id,
    )


def get_letter(*, session: Session, user: User, number: str, with_pdf: bool = False) -> Letter:
    """A letter the user may see (its exporter's and manufacturer's staff); others get 404."""
    query = _visible_letters(user).where(Letter.number == number.strip().upper())
    if with_pdf:
        query = query.options(undefer(Letter.pdf))
    letter = session.scalar(query.options(selectinload(Letter.vehicles)))
    if letter is None:
        raise NotFound(f"no letter {number.strip()!r}")
    return letter


LETTER_FILTERS = ("valid", "expired", "revoked", "superseded")


def _with_public_status(query: Any, status: str | None, today: dt.date) -> Any:
    """Only letters whose :func:`public_status` is ``status`` (None: every status)."""
    if status is None:
        return query
    if status not in LETTER_FILTERS:
        raise ValidationFailed(f"unknown letter status {status!r}", details={"status": ["unknown status"]})
    if status in ("revoked", "superseded"):
        return query.where(Letter.status == status)
    query = query.where(Letter.status == LetterStatus.VALID.value)
    if status == "expired":
        return query.where(Letter.valid_until < today)
    return query.where(or_(Letter.valid_until.is_(None), Letter.valid_until >= today))


def list_letters(
    *, session: Session, user: User, limit: int = 50, offset: int = 0, status: str | None = None
) -> list[Letter]:
    """Issued letters the user may see, newest first; ``status`` filters by the public status."""
    query = _with_public_status(_visible_letters(user), status, clock.today_in_china())
    # The content snapshot (every vehicle and outlet) is not needed for a list: see letter_summaries.
    query = query.options(defer(Letter.content)).order_by(Letter.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


@dataclass(frozen=True)
class LetterSummary:
    """What a row of the letters list shows besides the letter's columns, as printed."""

    manufacturer: str
    exporter: str
    reference: str
    vehicle_count: int
    destinations: list[str]  # country codes, alphabetical


def letter_summaries(*, session: Session, letter_ids: Sequence[int]) -> dict[int, LetterSummary]:
    """The summaries of these letters by id, without loading their content snapshots: vehicle
    counts and destinations from letter_vehicles (one grouped query), the printed names and the
    reference as single fields read out of the snapshot by the database."""
    if not letter_ids:
        return {}
    ids = list(letter_ids)
    per_destination: dict[int, dict[str, int]] = defaultdict(dict)
    for letter_id, destination, count in session.execute(
        select(LetterVehicleRow.letter_id, LetterVehicleRow.destination, func.count())
        .where(LetterVehicleRow.letter_id.in_(ids))
        .group_by(LetterVehicleRow.letter_id, LetterVehicleRow.destination)
    ):
        per_destination[letter_id][destination] = count
    rows = session.execute(
        select(
            Letter.id,
            Letter.content[("issuer", "name")].as_string(),
            Letter.content[("exporter", "name")].as_string(),
            Letter.content["reference"].as_string(),
        ).where(Letter.id.in_(ids))
    )
    return {
        letter_id: LetterSummary(
            manufacturer=manufacturer or "",
            exporter=exporter or "",
            reference=reference or "",
            vehicle_count=sum(per_destination[letter_id].values()),
            destinations=sorted(per_destination[letter_id]),
        )
        for letter_id, manufacturer, exporter, reference in rows
    }


def count_letters(*, session: Session, user: User, status: str | None = None) -> int:
    """How many letters :func:`list_letters` would give without a limit (for pagination)."""
    query = _with_public_status(_visible_letters(user), status, clock.today_in_china())
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def revoke_letter(*, session: Session, user: User, number: str, reason: str) -> Letter:
    """Revoke a valid letter with a reason; its VINs are free for a new letter at once."""
    if user.user_role not in (Role.AFTERSALES, Role.MANUFACTURER_ADMIN):
        raise Forbidden(f"the role {user.role} may not revoke letters")
    letter = get_letter(session=session, user=user, number=number)
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationFailed("a revocation needs a reason", details={"reason": ["must not be empty"]})
    if len(reason) > MAX_REASON_CHARS:
        raise ValidationFailed(
            f"the reason is longer than {MAX_REASON_CHARS} characters", details={"reason": ["too long"]}
        )
    session.execute(select(Letter.id).where(Letter.id == letter.id).with_for_update())
    session.refresh(letter)
    if letter.status != LetterStatus.VALID.value:
        raise Conflict(f"letter {letter.number} is already {letter.status}", details={"status": letter.status})
    letter.status = LetterStatus.REVOKED.value
    letter.revoked_at = clock.now_utc()
    letter.revoked_by = user.email
    letter.revocation_reason = reason
    session.execute(delete(CoveredVin).where(CoveredVin.letter_id == letter.id))
    audit.record(
        session,
        action="letter.revoked",
        object_type="letter",
        object_id=letter.number,
        actor=user.email,
        manufacturer_id=letter.manufacturer_id,
        exporter_id=letter.exporter_id,
        details={"reason": reason},
    )
    session.commit()
    return letter


# -- verification ------------------------------------------------------------------------------


_STAMP_COLUMNS = (
    Letter.id,
    Letter.number,
    Letter.status,
    Letter.issued_at,
    Letter.valid_until,
    Letter.pdf_sha256,
    Letter.page_count,
    Letter.seal_key_id,
    Letter.revoked_at,
    Letter.revoked_by,
    Letter.revocation_reason,
    Letter.superseded_by_id,
)
# Built once: verification by code is the public's most frequent request, and building (and
# looking up the compiled form of) an ORM statement costs more than running this one.
_VERIFY_BY_NUMBER = select(Letter.verification_code, *_STAMP_COLUMNS).where(Letter.number == bindparam("number"))


def verify_by_code(*, session: Session, number: str, code: str) -> LetterStamp | None:
    """The stamp of the issued letter with this number and verification code, or None — the
    caller answers both "unknown number" and "wrong code" identically, so numbers cannot be
    probed. One query of the letter's columns (no content): the caller loads the letter
    (``session.get(Letter, stamp.id)``) only when it has no answer made for this stamp."""
    row = session.connection().execute(_VERIFY_BY_NUMBER, {"number": number.strip().upper()}).first()
    expected = row.verification_code if row is not None else "X" * (4 * CODE_GROUPS)
    matches = codes_match(expected, code or "")
    if row is None or not matches or row.status == LetterStatus.PENDING.value:
        return None
    return LetterStamp.of(row, clock.today_in_china())


def trusted_keys(session: Session) -> list[TrustedKey]:
    rows = session.scalars(select(SealKey).options(selectinload(SealKey.manufacturer)))
    return [
        TrustedKey(
            kid=k.kid,
            manufacturer=k.manufacturer.code,
            certificate=certificate_of(k),
            not_before=k.not_before,
            retired_at=k.retired_at,
        )
        for k in rows
    ]


@dataclass(frozen=True)
class PdfVerification:
    check: SignatureCheck
    letter: Letter | None
    letter_number: str | None
    matches_issued_letter: bool
    key_belongs_to_manufacturer: bool
    status: str | None
    reasons: tuple[str, ...]

    @property
    def authentic(self) -> bool:
        return self.check.authentic and self.key_belongs_to_manufacturer and self.matches_issued_letter


def embedded_number(check: SignatureCheck) -> str | None:
    if check.attachment is None:
        return None
    try:
        number = json.loads(check.attachment.decode("utf-8"))["number"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return number if isinstance(number, str) else None


def embedded_issuer_uscc(check: SignatureCheck) -> str | None:
    """The issuer's credit code in the signed letter data, if any."""
    if check.attachment is None:
        return None
    try:
        uscc = json.loads(check.attachment.decode("utf-8"))["issuer"]["uscc"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return uscc if isinstance(uscc, str) and uscc else None


def local_status(session: Session, *, number: str, pdf: bytes) -> tuple[str | None, bool]:
    """The letter's status in this database and whether the file is byte for byte the issued one."""
    letter = session.scalar(select(Letter).where(Letter.number == number, Letter.status != LetterStatus.PENDING.value))
    if letter is None:
        return None, False
    same = hmac.compare_digest(letter.pdf_sha256 or "", hashlib.sha256(pdf).hexdigest())
    return public_status(letter, clock.today_in_china()), same


def signature_reasons(check: SignatureCheck) -> list[str]:
    reasons = []
    if not check.signed:
        reasons.append("NOT_SIGNED")
    else:
        if not check.intact:
            reasons.append("CONTENT_ALTERED")
        if not check.valid:
            reasons.append("SIGNATURE_INVALID")
        if not check.covers_whole_file:
            reasons.append("CHANGED_AFTER_SEALING")
        if check.key_id is None:
            reasons.append("UNKNOWN_KEY")
        elif not check.key_valid_at_signing:
            reasons.append("KEY_NOT_VALID_AT_SIGNING")
    return reasons


def verify_pdf(*, session: Session, pdf: bytes) -> PdfVerification:
    """Check an uploaded letter: its seal, that it is the very file issued, and its status."""
    check = check_pdf(pdf, trusted=trusted_keys(session), attachment_name=ATTACHMENT_NAME)
    reasons = signature_reasons(check)
    number = embedded_number(check)
    letter = None
    belongs = False
    if check.signed and number is None:
        reasons.append("NO_LETTER_DATA")
    elif number is not None and check.intact and check.valid and check.key_id is not None:
        # Only a file sealed with a published key is matched to a letter: a forged file naming
        # a real number must learn nothing about that letter.
        candidate = session.scalar(
            select(Letter)
            .where(Letter.number == number, Letter.status != LetterStatus.PENDING.value)
            .options(defer(Letter.content), joinedload(Letter.manufacturer))
        )
        if candidate is None:
            reasons.append("NOT_ISSUED_HERE")
        elif check.manufacturer != candidate.manufacturer.code:
            reasons.append("KEY_NOT_MANUFACTURERS")
        else:
            letter, belongs = candidate, True
    matches = letter is not None and hmac.compare_digest(letter.pdf_sha256 or "", hashlib.sha256(pdf).hexdigest())
    if letter is not None and not matches:
        reasons.append("DIFFERENT_FROM_ISSUED")
    status = public_status(letter, clock.today_in_china()) if letter is not None else None
    if status in ("revoked", "superseded", "expired"):
        reasons.append(status.upper())
    return PdfVerification(
        check=check,
        letter=letter,
        letter_number=number,
        matches_issued_letter=matches,
        key_belongs_to_manufacturer=belongs,
        status=status,
        reasons=tuple(reasons),
    )
