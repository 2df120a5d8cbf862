"""Public verification, no account: by number and code (the QR code's target), by uploading
the PDF, as HTML for people and JSON for systems.

A wrong code and an unknown number get byte-identical answers, so numbers cannot be probed;
each address may try 30 a minute and 500 an hour (issuer.web.security), against codes of 80 bits.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from issuer.domain.verification import VERIFICATION_TEXT
from issuer.errors import BadRequest
from issuer.schemas.letters import VerifyByCodeOutputSchema, VerifyPdfOutputSchema
from issuer.services import letters as letter_service
from issuer.web.letters import letter_body
from issuer.web.security import VERIFY_LOOKUP, VERIFY_UPLOAD, rate_limited
from issuer.web.session import db_session
from issuer.web.ui import in_language

verify = Blueprint("verify", __name__)
verify_api = Blueprint("verify_api", __name__)  # the JSON half: no cookies, so no CSRF token

NOT_FOUND_MESSAGE = "no letter with this number and verification code"
PDF_MAGIC = b"%PDF-"


def _not_found_json():  # type: ignore[no-untyped-def]
    return jsonify({"error": {"code": "NOT_FOUND", "message": NOT_FOUND_MESSAGE, "details": {}}}), 404


def _uploaded_pdf() -> bytes:
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("send the letter as a multipart form field named 'file'")
    try:
        data = upload.read()
    finally:
        upload.close()
    if not data:
        raise BadRequest("the uploaded file is empty")
    return data


def _pdf_answer(data: bytes) -> dict[str, Any]:
    result = letter_service.verify_pdf(session=db_session(), pdf=data)
    check = result.check
    messages = [
        f"{VERIFICATION_TEXT[r][0]} {VERIFICATION_TEXT[r][1]}" for r in result.reasons if r in VERIFICATION_TEXT
    ]
    messages.extend(p for p in check.problems if p not in messages)
    return {
        "authentic": result.authentic,
        "letter_number": result.letter_number,
        "status": result.status,
        "matches_issued_letter": result.matches_issued_letter,
        "signature": {
            "signed": check.signed,
            "valid": check.valid,
            "intact": check.intact,
            "covers_whole_file": check.covers_whole_file,
            "key_id": check.key_id,
            "signer": check.signer,
            "signing_time": check.signing_time,
            "key_belongs_to_manufacturer": result.key_belongs_to_manufacturer,
            "key_valid_at_signing": check.key_valid_at_signing,
        },
        "reasons": list(result.reasons),
        "messages": messages,
        "signature_problems": list(check.problems),
        "letter": letter_body(result.letter) if result.letter is not None else None,
    }


@verify_api.get("/api/v1/verify/<number>")
@rate_limited(VERIFY_LOOKUP)
def verify_by_code_json(number: str):  # type: ignore[no-untyped-def]
    letter = letter_service.verify_by_code(session=db_session(), number=number, code=request.args.get("code", ""))
    if letter is None:
        return _not_found_json()
    body = letter_body(letter)
    return VerifyByCodeOutputSchema().dump({"status": body["status"], "letter": body})


@verify_api.post("/api/v1/verify")
@rate_limited(VERIFY_UPLOAD)
def verify_pdf_json():  # type: ignore[no-untyped-def]
    return VerifyPdfOutputSchema().dump(_pdf_answer(_uploaded_pdf()))


@verify.get("/verify")
def verify_form():  # type: ignore[no-untyped-def]
    """The form; submitted (``?number=…&code=…``) it goes to the letter's page."""
    number = request.args.get("number", "").strip()
    if number:
        return redirect(url_for("verify.verify_page", number=number, code=request.args.get("code", "").strip()))
    return render_template("verify/index.html")


@verify.get("/verify/<number>")
@rate_limited(VERIFY_LOOKUP)
def verify_page(number: str):  # type: ignore[no-untyped-def]
    letter = letter_service.verify_by_code(session=db_session(), number=number, code=request.args.get("code", ""))
    if letter is None:
        # Nothing typed is echoed back but the number: a wrong code and an unknown number must
        # get the same page (so the language switch returns to the plain form).
        page = render_template(
            "verify/index.html", not_found=True, number=number, language_next=url_for("verify.verify_form")
        )
        return page, 404
    return render_template("verify/letter.html", letter=letter_body(letter))


@verify.post("/verify")
@rate_limited(VERIFY_UPLOAD)
def verify_upload_page():  # type: ignore[no-untyped-def]
    data = b""
    upload = request.files.get("file")
    if upload is not None:
        try:
            data = upload.read()
        finally:
            upload.close()
    if not data:
        return render_template("verify/index.html", upload_error=True), 400
    answer = _pdf_answer(data)
    findings = [in_language(*VERIFICATION_TEXT[r]) for r in answer["reasons"] if r in VERIFICATION_TEXT]
    # The seal check's own findings come in English only; they are technical detail.
    findings.extend(p for p in answer["signature_problems"] if p not in findings)
    return render_template("verify/result.html", answer=answer, letter=answer["letter"], findings=findings)
