"""Shapes of the decision, letter, revocation and verification endpoints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from issuer.schemas.common import NO_NUL_PATTERN, Text


class ApproveField(fields.Field):
    """``"all_eligible"`` or a list of VINs."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value == "all_eligible":
            return value
        if isinstance(value, list) and all(isinstance(v, str) and 0 < len(v) <= 64 and "\x00" not in v for v in value):
            if len(value) > 10_000:
                raise ValidationError("at most 10,000 VINs")
            return value
        raise ValidationError('must be "all_eligible" or a list of VINs')


class RejectionInputSchema(Schema):
    vin = Text(required=True, validate=validate.Length(min=1, max=64))
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


class DecisionInputSchema(Schema):
    approve = ApproveField(
        load_default=list,
        metadata={
            "oneOf": [
                {"type": "string", "enum": ["all_eligible"]},
                {
                    "type": "array",
                    "maxItems": 10_000,
                    "items": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NO_NUL_PATTERN},
                },
            ]
        },
    )
    reject = fields.List(fields.Nested(RejectionInputSchema), load_default=list)
    note = Text(load_default="", validate=validate.Length(max=1000))
    valid_until = fields.Date(
        load_default=None, allow_none=True, metadata={"description": "overrides the manufacturer's default validity"}
    )


class DecisionOutputSchema(Schema):
    request_id = fields.Integer(required=True)
    status = fields.String(required=True)
    letter_number = fields.String(allow_none=True, required=True)
    letter_url = fields.String(allow_none=True, required=True)
    approved = fields.List(fields.String(), required=True)
    rejected = fields.List(fields.String(), required=True)
    # Set when the letter is sealed by a worker (answer 202): where to ask how far it has got.
    status_url = fields.String(allow_none=True, required=True)
    job = fields.Nested(lambda: JobOutputSchema(), allow_none=True, required=True)


class JobOutputSchema(Schema):
    """An issuance job: ``state`` is queued, running, done or failed."""

    id = fields.String(required=True)
    state = fields.String(required=True)
    request_id = fields.Integer(allow_none=True, required=True)
    letter_number = fields.String(allow_none=True, required=True)  # once issued
    letter_url = fields.String(allow_none=True, required=True)
    vehicles = fields.Integer(required=True)
    attempts = fields.Integer(required=True)
    queue_position = fields.Integer(allow_none=True, required=True)  # 0 = next; while queued
    error = fields.String(allow_none=True, required=True)  # when failed, or a retried attempt's
    status_url = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    started_at = fields.DateTime(allow_none=True, required=True)
    finished_at = fields.DateTime(allow_none=True, required=True)


class PartyOutputSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    name_en = fields.String(required=True)
    uscc = fields.String(required=True)


class LetterVehicleOutputSchema(Schema):
    vin = fields.String(required=True)
    brand = fields.String(required=True)
    model = fields.String(required=True)
    registration_date = fields.Date(required=True)
    destination = fields.String(required=True)


class LetterOutletOutputSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    provider = fields.String(required=True)
    address = fields.String(required=True)
    city = fields.String(required=True)
    phone = fields.String(required=True)
    email = fields.String(required=True)


class RevocationOutputSchema(Schema):
    revoked_at = fields.DateTime(required=True)
    revoked_by = fields.String(allow_none=True)
    reason = fields.String(required=True)


class LetterOutputSchema(Schema):
    number = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["valid", "revoked", "expired", "superseded"]))
    issued_at = fields.DateTime(required=True)
    issued_on = fields.Date(required=True)
    valid_until = fields.Date(allow_none=True, required=True)
    verification_code = fields.String(required=True)
    verify_url = fields.String(required=True)
    manufacturer = fields.Nested(PartyOutputSchema, required=True)
    exporter = fields.Nested(PartyOutputSchema, required=True)
    reference = fields.String(required=True)
    request_id = fields.Integer(allow_none=True, required=True)
    vehicles = fields.List(fields.Nested(LetterVehicleOutputSchema), required=True)
    outlets = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.Nested(LetterOutletOutputSchema)),
        required=True,
        metadata={"description": "the outlets printed, per destination country code"},
    )
    destinations = fields.List(fields.String(), required=True)
    page_count = fields.Integer(required=True)
    pdf_sha256 = fields.String(required=True)
    seal_key_id = fields.String(required=True)
    supersedes = fields.String(allow_none=True, required=True)
    superseded_by = fields.String(allow_none=True, required=True)
    revocation = fields.Nested(RevocationOutputSchema, allow_none=True, required=True)


class LetterListOutputSchema(Schema):
    letters = fields.List(fields.Nested(LetterOutputSchema), required=True)


class RevokeInputSchema(Schema):
    reason = Text(required=True, validate=validate.Length(min=1, max=500))


class PublicRevocationOutputSchema(Schema):
    """What the public sees of a revocation: when and why, not which staff member."""

    revoked_at = fields.DateTime(required=True)
    reason = fields.String(required=True)


class PublicLetterOutputSchema(LetterOutputSchema):
    revocation = fields.Nested(PublicRevocationOutputSchema, allow_none=True, required=True)

    class Meta:
        exclude = ("verification_code", "request_id")


class VerifyByCodeOutputSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["valid", "revoked", "expired", "superseded"]))
    letter = fields.Nested(PublicLetterOutputSchema, required=True)


class SignatureOutputSchema(Schema):
    signed = fields.Boolean(required=True)
    valid = fields.Boolean(required=True)
    intact = fields.Boolean(required=True)
    covers_whole_file = fields.Boolean(required=True)
    key_id = fields.String(allow_none=True, required=True)
    signer = fields.String(allow_none=True, required=True)
    signing_time = fields.DateTime(allow_none=True, required=True)
    key_belongs_to_manufacturer = fields.Boolean(required=True)
    key_valid_at_signing = fields.Boolean(required=True)


class VerifyPdfOutputSchema(Schema):
    authentic = fields.Boolean(required=True)
    letter_number = fields.String(allow_none=True, required=True)
    status = fields.String(allow_none=True, required=True)
    matches_issued_letter = fields.Boolean(required=True)
    signature = fields.Nested(SignatureOutputSchema, required=True)
    reasons = fields.List(fields.String(), required=True)
    messages = fields.List(fields.String(), required=True)
    letter = fields.Nested(PublicLetterOutputSchema, allow_none=True, required=True)
