"""Shapes shared by several endpoints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields

# The OpenAPI pattern of a string without NUL characters (an ECMA 262 regular expression).
NO_NUL_PATTERN = "^[^\\u0000]*$"


class Text(fields.String):
    """A string input field that refuses NUL characters: PostgreSQL cannot store them, and no
    VIN, name or code legitimately holds one. The OpenAPI document says so with a pattern."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"pattern": NO_NUL_PATTERN, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text is not None and "\x00" in text:
            raise ValidationError("must not contain NUL characters")
        return text


def not_blank(value: str) -> None:
    """Refuse a value of only whitespace (a brand or model printed on a letter cannot be blank)."""
    if not value.strip():
        raise ValidationError("must not be blank")


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
