"""Shapes shared by several endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "stable machine-readable code"})
    message = fields.String(required=True, metadata={"description": "what went wrong, for people"})
    details = fields.Raw(metadata={"description": "field errors or rows, depending on the code"})


class ErrorOutputSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class CountryOutputSchema(Schema):
    code = fields.String(required=True)
    name_zh = fields.String(required=True)
    name_en = fields.String(required=True)
