"""Shapes of the outlet registry endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from issuer.schemas.common import Text


class OutletInputSchema(Schema):
    code = Text(required=True, validate=validate.Length(min=1, max=64))
    country = Text(required=True, validate=validate.Length(min=1, max=8))
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    provider = Text(required=True, validate=validate.Length(min=1, max=200))
    address = Text(required=True, validate=validate.Length(min=1, max=500))
    city = Text(load_default="", validate=validate.Length(max=100))
    phone = Text(load_default="", validate=validate.Length(max=50))
    email = Text(load_default="", validate=validate.Length(max=254))
    brands = Text(
        load_default="",
        validate=validate.Length(max=1000),
        metadata={"description": "';'-separated; empty = all brands"},
    )
    valid_from = fields.Date(required=True)
    valid_to = fields.Date(load_default=None, allow_none=True, metadata={"description": "inclusive; null = open-ended"})
    active = fields.Boolean(load_default=True)


class OutletPatchInputSchema(Schema):
    """Every field optional; ``active: false`` deactivates the outlet."""

    country = Text(validate=validate.Length(min=1, max=8))
    name = Text(validate=validate.Length(min=1, max=200))
    provider = Text(validate=validate.Length(min=1, max=200))
    address = Text(validate=validate.Length(min=1, max=500))
    city = Text(validate=validate.Length(max=100))
    phone = Text(validate=validate.Length(max=50))
    email = Text(validate=validate.Length(max=254))
    brands = Text(validate=validate.Length(max=1000))
    valid_from = fields.Date()
    valid_to = fields.Date(allow_none=True)
    active = fields.Boolean()


class OutletOutputSchema(Schema):
    code = fields.String(required=True)
    country = fields.String(required=True)
    country_name_zh = fields.String(required=True)
    country_name_en = fields.String(required=True)
    name = fields.String(required=True)
    provider = fields.String(required=True)
    address = fields.String(required=True)
    city = fields.String(required=True)
    phone = fields.String(required=True)
    email = fields.String(required=True)
    brands = fields.List(fields.String(), required=True, metadata={"description": "empty = all brands"})
    valid_from = fields.Date(required=True)
    valid_to = fields.Date(allow_none=True, required=True)
    active = fields.Boolean(required=True)
    version = fields.Integer(required=True)
    updated_at = fields.DateTime(required=True)


class OutletVersionOutputSchema(Schema):
    version = fields.Integer(required=True)
    change = fields.String(required=True)
    recorded_at = fields.DateTime(required=True)
    recorded_by = fields.String(required=True)
    country = fields.String(required=True)
    name = fields.String(required=True)
    provider = fields.String(required=True)
    address = fields.String(required=True)
    city = fields.String(required=True)
    phone = fields.String(required=True)
    email = fields.String(required=True)
    brands = fields.String(required=True)
    valid_from = fields.Date(required=True)
    valid_to = fields.Date(allow_none=True, required=True)
    active = fields.Boolean(required=True)


class OutletDetailOutputSchema(OutletOutputSchema):
    versions = fields.List(fields.Nested(OutletVersionOutputSchema), required=True)


class OutletListOutputSchema(Schema):
    outlets = fields.List(fields.Nested(OutletOutputSchema), required=True)
