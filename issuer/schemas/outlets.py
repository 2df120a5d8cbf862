"""Shapes of the outlet registry endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class OutletInputSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    country = fields.String(required=True, validate=validate.Length(min=1, max=8))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    provider = fields.String(required=True, validate=validate.Length(min=1, max=200))
    address = fields.String(required=True, validate=validate.Length(min=1, max=500))
    city = fields.String(load_default="", validate=validate.Length(max=100))
    phone = fields.String(load_default="", validate=validate.Length(max=50))
    email = fields.String(load_default="", validate=validate.Length(max=254))
    brands = fields.String(
        load_default="",
        validate=validate.Length(max=1000),
        metadata={"description": "';'-separated; empty = all brands"},
    )
    valid_from = fields.Date(required=True)
    valid_to = fields.Date(load_default=None, allow_none=True, metadata={"description": "inclusive; null = open-ended"})
    active = fields.Boolean(load_default=True)


class OutletPatchInputSchema(Schema):
    """Every field optional; ``active: false`` deactivates the outlet."""

    country = fields.String(validate=validate.Length(min=1, max=8))
    name = fields.String(validate=validate.Length(min=1, max=200))
    provider = fields.String(validate=validate.Length(min=1, max=200))
    address = fields.String(validate=validate.Length(min=1, max=500))
    city = fields.String(validate=validate.Length(max=100))
    phone = fields.String(validate=validate.Length(max=50))
    email = fields.String(validate=validate.Length(max=254))
    brands = fields.String(validate=validate.Length(max=1000))
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
