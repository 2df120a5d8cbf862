"""Shapes of the precheck and request endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from issuer.schemas.common import Text, not_blank

MAX_VEHICLES = 10_000


class VehicleInputSchema(Schema):
    vin = Text(required=True, validate=validate.Length(min=1, max=64))
    brand = Text(required=True, validate=[validate.Length(min=1, max=100), not_blank])
    model = Text(required=True, validate=[validate.Length(min=1, max=100), not_blank])
    registration_date = fields.Date(
        required=True, metadata={"description": "注册登记日期 on the registration certificate"}
    )
    export_transfer_date = fields.Date(
        load_default=None, allow_none=True, metadata={"description": "转让登记待出口日期, when done"}
    )
    destination = Text(
        required=True, validate=validate.Length(min=1, max=8), metadata={"description": "ISO 3166-1 alpha-2, any case"}
    )


class PrecheckInputSchema(Schema):
    manufacturer = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=32),
        metadata={"description": "manufacturer code; omit to split the list across the hosted manufacturers"},
    )
    application_date = fields.Date(required=True, metadata={"description": "planned export-license application date"})
    reference = Text(load_default="", validate=validate.Length(max=200))
    vehicles = fields.List(
        fields.Nested(VehicleInputSchema), required=True, validate=validate.Length(min=1, max=MAX_VEHICLES)
    )


class RequestInputSchema(PrecheckInputSchema):
    manufacturer = Text(required=True, validate=validate.Length(min=1, max=32))
    supersedes = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=48),
        metadata={"description": "number of a valid letter this request corrects; it is superseded on issue"},
    )


class ExplanationOutputSchema(Schema):
    code = fields.String(required=True)
    zh = fields.String(required=True)
    en = fields.String(required=True)


class VehicleVerdictOutputSchema(Schema):
    vin = fields.String(required=True)
    verdict = fields.String(required=True, validate=validate.OneOf(["eligible", "not_required", "refused"]))
    reasons = fields.List(fields.String(), required=True)
    explanations = fields.List(fields.Nested(ExplanationOutputSchema), required=True)
    letter_required = fields.Boolean(required=True)
    letter_not_needed_from = fields.Date(allow_none=True, required=True)
    destination = fields.String(required=True)
    destination_name_zh = fields.String(allow_none=True, required=True)
    destination_name_en = fields.String(allow_none=True, required=True)


class WarningOutputSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class PrecheckOutputSchema(Schema):
    manufacturer = fields.String(required=True)
    vehicles = fields.List(fields.Nested(VehicleVerdictOutputSchema), required=True)
    warnings = fields.List(fields.Nested(WarningOutputSchema), required=True)


class UnassignedOutputSchema(Schema):
    vin = fields.String(required=True)
    index = fields.Integer(required=True, metadata={"description": "position in the submitted list"})
    verdict = fields.String(required=True)
    reasons = fields.List(fields.String(), required=True)
    explanations = fields.List(fields.Nested(ExplanationOutputSchema), required=True)


class PrecheckGroupOutputSchema(Schema):
    manufacturer = fields.String(required=True)
    manufacturer_name = fields.String(required=True)
    indexes = fields.List(fields.Integer(), required=True)
    vehicles = fields.List(fields.Nested(VehicleVerdictOutputSchema), required=True)
    warnings = fields.List(fields.Nested(WarningOutputSchema), required=True)


class SplitPrecheckOutputSchema(Schema):
    groups = fields.List(fields.Nested(PrecheckGroupOutputSchema), required=True)
    unassigned = fields.List(fields.Nested(UnassignedOutputSchema), required=True)
    warnings = fields.List(fields.Nested(WarningOutputSchema), required=True)


class RequestVehicleOutputSchema(VehicleVerdictOutputSchema):
    brand = fields.String(required=True)
    model = fields.String(required=True)
    registration_date = fields.Date(required=True)
    export_transfer_date = fields.Date(allow_none=True, required=True)
    decision = fields.String(allow_none=True, required=True)
    decision_reason = fields.String(allow_none=True, required=True)


class RequestOutputSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    manufacturer = fields.String(required=True)
    exporter = fields.String(required=True)
    application_date = fields.Date(required=True)
    reference = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    assessed_on = fields.Date(required=True)
    vehicle_count = fields.Integer(required=True)
    vehicles = fields.List(fields.Nested(RequestVehicleOutputSchema), required=True)
    warnings = fields.List(fields.Nested(WarningOutputSchema), required=True)


class RequestSummaryOutputSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    manufacturer = fields.String(required=True)
    exporter = fields.String(required=True)
    application_date = fields.Date(required=True)
    reference = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    vehicle_count = fields.Integer(required=True)


class RequestListOutputSchema(Schema):
    requests = fields.List(fields.Nested(RequestSummaryOutputSchema), required=True)
