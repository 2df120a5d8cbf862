"""Form helpers shared by the pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_wtf import FlaskForm

from issuer.errors import IssuerError


def show_service_error(form: FlaskForm, error: IssuerError, *, fields: Mapping[str, str] | None = None) -> None:
    """Put a service's error beside the fields it names, or at the top of the form.

    Services name bad fields in ``details`` as ``{field: [messages]}`` (or a list of
    ``{"field", "message"}``); ``fields`` maps a service's field name to the form's where they
    differ. Whatever names no field of the form is shown as the form's own error."""
    fields = fields or {}
    placed = False
    details: Any = error.details
    pairs: list[tuple[str, str]] = []
    if isinstance(details, Mapping):
        for name, messages in details.items():
            texts = messages if isinstance(messages, list) else [messages]
            pairs.extend((str(name), str(m)) for m in texts)
    elif isinstance(details, list):
        pairs.extend((str(d.get("field", "")), str(d.get("message", ""))) for d in details if isinstance(d, Mapping))
    for name, message in pairs:
        field = getattr(form, fields.get(name, name), None)
        if field is not None and hasattr(field, "errors"):
            if not isinstance(field.errors, list):
                field.errors = list(field.errors)
            field.errors.append(message)
            placed = True
    if not placed or not pairs:
        form.form_errors.append(error.message)
