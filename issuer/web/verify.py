"""Public verification, no account: by number and code (the QR code's target), by uploading
the PDF, as HTML for people and JSON for systems.

A wrong code and an unknown number get byte-identical answers, so numbers cannot be probed;
each address may try 30 a minute and 500 an hour (issuer.web.security), against codes of 80 bits.

What a verification shows of a letter is made once per state of the letter and kept
(:class:`LetterAnswers`): verifying is the public's most frequent request, the content of an
issued letter never changes, and what can change (its status, a revocation, a successor, the
day it expires) is read from the database on every request and is part of the key. So an
answer is never stale, whichever worker process made it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from markupsafe import Markup

from issuer import clock
from issuer.domain.verification import VERIFICATION_TEXT
from issuer.errors import BadRequest
from issuer.models import Letter
from issuer.schemas.letters import PublicLetterOutputSchema, VerifyPdfOutputSchema
from issuer.services import letters as letter_service
from issuer.services.letters import LetterStamp
from issuer.web.letters import letter_body
from issuer.web.security import VERIFY_LOOKUP, VERIFY_UPLOAD, rate_limited
from issuer.web.session import db_session
from issuer.web.ui import in_language

verify = Blueprint("verify", __name__)
verify_api = Blueprint("verify_api", __name__)  # the JSON half: no cookies, so no CSRF token

NOT_FOUND_MESSAGE = "no letter with this number and verification code"
PDF_MAGIC = b"%PDF-"


# Kept answers, per process: about 1.7 KB per vehicle with the JSON answer and the page part in
# both languages (measured for a 1,000-vehicle letter), so at most about 35 MB.
MAX_KEPT_VEHICLES = 20_000
MAX_KEPT_LETTERS = 1_000


class LetterAnswer:
    """What verification shows of one letter in one state: ``body`` (:func:`letter_body`),
    ``public`` (its public JSON form), ``by_code`` (the bytes of the whole answer of
    ``GET /api/v1/verify/<number>``) and ``page_part()`` (the letter's part of the pages,
    verify/_letter.html, per language). Each is made when first asked for."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.vehicles = len(body["vehicles"])
        self._public: dict[str, Any] | None = None
        self._by_code: bytes | None = None
        self._page_parts: dict[str, Markup] = {}

    @property
    def public(self) -> dict[str, Any]:
        if self._public is None:
            self._public = PublicLetterOutputSchema().dump(self.body)
        return self._public

    @property
    def by_code(self) -> bytes:
        # VerifyByCodeOutputSchema's shape: the public status beside the public letter.
        if self._by_code is None:
            self._by_code = current_app.json.response({"status": self.body["status"], "letter": self.public}).get_data()
        return self._by_code

    def page_part(self) -> Markup:
        """verify/_letter.html in the request's language: nothing in it depends on the visitor."""
        language = str(get_locale())
        part = self._page_parts.get(language)
        if part is None:
            # Already escaped: Jinja rendered it with autoescape, as the include did.
            part = Markup(render_template("verify/_letter.html", letter=self.body))  # noqa: S704
            self._page_parts[language] = part
        return part


class LetterAnswers:
    """The answers made, one per letter (for the latest stamp seen), the least recently used
    dropped beyond ``MAX_KEPT_LETTERS`` letters or ``MAX_KEPT_VEHICLES`` vehicles in all.
    One per app (letter ids are those of the app's database), shared by its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[int, tuple[LetterStamp, LetterAnswer]] = OrderedDict()
        self._vehicles = 0

    def answer(self, stamp: LetterStamp, load: Callable[[], Letter]) -> LetterAnswer:
        """The answer for the letter as ``stamp`` describes it; ``load`` gives the letter when
        no answer was made for that stamp yet."""
        with self._lock:
            kept = self._kept.get(stamp.id)
            if kept is not None and kept[0] == stamp:
                self._kept.move_to_end(stamp.id)
                return kept[1]
        letter = load()
        stamp = LetterStamp.of(letter, clock.today_in_china())  # what the answer is made from
        made = LetterAnswer(letter_body(letter))
        with self._lock:
            previous = self._kept.pop(stamp.id, None)
            if previous is not None:
                self._vehicles -= previous[1].vehicles
            if made.vehicles <= MAX_KEPT_VEHICLES:
                self._kept[stamp.id] = (stamp, made)
                self._vehicles += made.vehicles
            while self._vehicles > MAX_KEPT_VEHICLES or len(self._kept) > MAX_KEPT_LETTERS:
                _, (_, dropped) = self._kept.popitem(last=False)
                self._vehicles -= dropped.vehicles
        return made


def _answers() -> LetterAnswers:
    answers = current_app.extensions.get("issuer.letter_answers")
    if answers is None:
        answers = current_app.extensions.setdefault("issuer.letter_answers", LetterAnswers())
    return answers  # type: ignore[no-any-return]


def answer_for_stamp(stamp: LetterStamp) -> LetterAnswer:
    return _answers().answer(stamp, lambda: _load(stamp.id))


def answer_for_letter(letter: Letter) -> LetterAnswer:
    return _answers().answer(LetterStamp.of(letter, clock.today_in_china()), lambda: letter)


def _load(letter_id: int) -> Letter:
    letter = db_session().get(Letter, letter_id)
    if letter is None:  # pragma: no cover - issued letters are never deleted
        raise LookupError(f"letter {letter_id} is gone")
    return letter


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


def _pdf_answer(data: bytes) -> tuple[dict[str, Any], LetterAnswer | None]:
    """The check of an uploaded file, and what is shown of the letter it matched (if any)."""
    result = letter_service.verify_pdf(session=db_session(), pdf=data)
    shown = answer_for_letter(result.letter) if result.letter is not None else None
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
        "letter": shown.body if shown is not None else None,
    }, shown


@verify_api.get("/api/v1/verify/<number>")
@rate_limited(VERIFY_LOOKUP)
def verify_by_code_json(number: str):  # type: ignore[no-untyped-def]
    stamp = letter_service.verify_by_code(session=db_session(), number=number, code=request.args.get("code", ""))
    if stamp is None:
        return _not_found_json()
    return current_app.response_class(answer_for_stamp(stamp).by_code, mimetype=current_app.json.mimetype)


@verify_api.post("/api/v1/verify")
@rate_limited(VERIFY_UPLOAD)
def verify_pdf_json():  # type: ignore[no-untyped-def]
    answer, shown = _pdf_answer(_uploaded_pdf())
    # The letter's part is dumped once per state of the letter (LetterAnswer.public); it is the
    # last field of VerifyPdfOutputSchema, so the keys keep their order.
    body = VerifyPdfOutputSchema(exclude=("letter",)).dump(answer)
    body["letter"] = shown.public if shown is not None else None
    return body


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
    stamp = letter_service.verify_by_code(session=db_session(), number=number, code=request.args.get("code", ""))
    if stamp is None:
        # Nothing typed is echoed back but the number: a wrong code and an unknown number must
        # get the same page (so the language switch returns to the plain form).
        page = render_template(
            "verify/index.html", not_found=True, number=number, language_next=url_for("verify.verify_form")
        )
        return page, 404
    answer = answer_for_stamp(stamp)
    return render_template("verify/letter.html", letter=answer.body, letter_part=answer.page_part())


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
    answer, shown = _pdf_answer(data)
    findings = [in_language(*VERIFICATION_TEXT[r]) for r in answer["reasons"] if r in VERIFICATION_TEXT]
    # The seal check's own findings come in English only; they are technical detail.
    findings.extend(p for p in answer["signature_problems"] if p not in findings)
    return render_template(
        "verify/result.html",
        answer=answer,
        letter=answer["letter"],
        letter_part=shown.page_part() if shown is not None else None,
        findings=findings,
    )
