"""The JSON API of decisions and letters (under /api/v1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, jsonify

from issuer import clock
from issuer.models import Letter, Role
from issuer.schemas.letters import (
    DecisionInputSchema,
    DecisionOutputSchema,
    JobOutputSchema,
    LetterListOutputSchema,
    LetterOutputSchema,
    RevokeInputSchema,
)
from issuer.services import issuance_jobs
from issuer.services import letters as letter_service
from issuer.web import issuing
from issuer.web.api import MAX_ID, int_arg, parse_body
from issuer.web.auth import current_user, requires
from issuer.web.session import db_session

letters_api = Blueprint("letters_api", __name__, url_prefix="/api/v1")

LETTER_READERS = (Role.EXPORTER, Role.MANUFACTURER_ADMIN, Role.AFTERSALES, Role.PLATFORM_ADMIN)


issuance = issuing.issuance  # kept for the pages that import it from here


def letter_body(letter: Letter) -> dict[str, Any]:
    """A letter as the API shows it, from its immutable content snapshot."""
    content = letter.content
    outlets = {section["country"]: section["outlets"] for section in content["destinations"]}
    vehicles = [
        {
            **vehicle,
            "registration_date": dt.date.fromisoformat(vehicle["registration_date"]),
            "destination": section["country"],
        }
        for section in content["destinations"]
        for vehicle in section["vehicles"]
    ]
    manufacturer, exporter = letter.manufacturer, letter.exporter
    revocation = None
    if letter.revoked_at is not None:
        revocation = {
            "revoked_at": letter.revoked_at,
            "revoked_by": letter.revoked_by,
            "reason": letter.revocation_reason or "",
        }
    return {
        "number": letter.number,
        "status": letter_service.public_status(letter, clock.today_in_china()),
        "issued_at": letter.issued_at,
        "issued_on": letter.issued_on,
        "valid_until": letter.valid_until,
        "verification_code": letter.verification_code,
        "verify_url": issuance().verify_url(letter.number, letter.verification_code),
        "manufacturer": {"code": manufacturer.code, **content["issuer"]},
        "exporter": {"code": exporter.code, **content["exporter"]},
        "reference": content.get("reference", ""),
        "request_id": letter.request_id,
        "vehicles": vehicles,
        "outlets": outlets,
        "destinations": list(outlets),
        "page_count": letter.page_count,
        "pdf_sha256": letter.pdf_sha256,
        "seal_key_id": _kid(letter),
        "supersedes": content.get("supersedes"),
        "superseded_by": letter.superseded_by.number if letter.superseded_by_id and letter.superseded_by else None,
        "revocation": revocation,
    }


def _kid(letter: Letter) -> str:
    from issuer.models import SealKey

    key = db_session().get(SealKey, letter.seal_key_id) if letter.seal_key_id else None
    return key.kid if key else ""


@letters_api.post(f"/requests/<int(max={MAX_ID}):request_id>/decision")
@requires(Role.AFTERSALES)
def decide(request_id: int):  # type: ignore[no-untyped-def]
    """Approve and reject vehicles; approving issues the letter: 200 with its number, or 202
    with a status URL when a worker seals it (a job queue is configured and the letter is big)."""
    body = parse_body(DecisionInputSchema())
    decision = issuing.decide(
        session=db_session(),
        user=current_user(),
        request_id=request_id,
        approve=body["approve"],
        reject=[(r["vin"], r["reason"]) for r in body["reject"]],
        note=body["note"],
        valid_until=body["valid_until"],
    )
    job = decision.job
    number = decision.letter.number if decision.letter and job is None else None
    answer = DecisionOutputSchema().dump(
        {
            "request_id": decision.request.id,
            "status": decision.request.status,
            "letter_number": number,
            "letter_url": f"/api/v1/letters/{number}" if number else None,
            "approved": decision.approved,
            "rejected": decision.rejected,
            "status_url": issuing.status_url(job) if job is not None else None,
            "job": issuing.job_body(job) if job is not None else None,
        }
    )
    if job is None:
        return answer
    response = jsonify(answer)
    response.status_code = 202
    response.headers["Location"] = issuing.status_url(job)
    return response


@letters_api.get("/jobs/<job_id>")
@requires(*LETTER_READERS)
def job_status(job_id: str):  # type: ignore[no-untyped-def]
    """How far a queued issuance has got: ``state`` queued, running, done (with the letter's
    number) or failed (with the error)."""
    job = issuance_jobs.get_job(session=db_session(), user=current_user(), job_id=job_id)
    response = jsonify(JobOutputSchema().dump(issuing.job_body(job)))
    if not job.finished:
        response.headers["Retry-After"] = "2"
    return response


@letters_api.get("/letters")
@requires(*LETTER_READERS)
def list_letters():  # type: ignore[no-untyped-def]
    limit = int_arg("limit", default=50, low=1, high=500)
    offset = int_arg("offset", default=0, low=0, high=10**9)
    rows = letter_service.list_letters(session=db_session(), user=current_user(), limit=limit, offset=offset)
    return LetterListOutputSchema().dump({"letters": [letter_body(letter) for letter in rows]})


@letters_api.get("/letters/<number>")
@requires(*LETTER_READERS)
def get_letter(number: str):  # type: ignore[no-untyped-def]
    letter = letter_service.get_letter(session=db_session(), user=current_user(), number=number)
    return LetterOutputSchema().dump(letter_body(letter))


@letters_api.get("/letters/<number>/pdf")
@requires(*LETTER_READERS)
def letter_pdf(number: str):  # type: ignore[no-untyped-def]
    """The sealed PDF, byte for byte as issued."""
    letter = letter_service.get_letter(session=db_session(), user=current_user(), number=number, with_pdf=True)
    response = Response(letter.pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{letter.number}.pdf"'
    response.headers["X-Content-SHA256"] = letter.pdf_sha256 or ""
    response.cache_control.private = True
    return response


@letters_api.post("/letters/<number>/revoke")
@requires(Role.AFTERSALES, Role.MANUFACTURER_ADMIN)
def revoke(number: str):  # type: ignore[no-untyped-def]
    body = parse_body(RevokeInputSchema())
    letter = letter_service.revoke_letter(
        session=db_session(), user=current_user(), number=number, reason=body["reason"]
    )
    return LetterOutputSchema().dump(letter_body(letter))
