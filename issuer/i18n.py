"""Languages: Simplified Chinese (the default) and English, with Flask-Babel.

Messages are written in English in the code and templates (``_("…")``) and translated to
Chinese in ``issuer/translations/zh``. The language of a page is, in order: the signed-in user's
saved choice, the visitor's choice kept in the session, the browser's Accept-Language, Chinese.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request, session
from flask_babel import Babel
from flask_login import current_user

LANGUAGES = {"zh": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh"


def select_locale() -> str:
    if current_user and current_user.is_authenticated and current_user.locale in LANGUAGES:
        return str(current_user.locale)
    chosen = session.get("locale")
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


def init_babel(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai")
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(Path(__file__).resolve().parent / "translations")
    Babel(app, locale_selector=select_locale)
