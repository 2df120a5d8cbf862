"""Every text a page shows has its Chinese translation, with the same placeholders.

The messages are extracted from the code and templates exactly as ``make i18n-extract`` does, so a
new English text without a translation fails here rather than appearing in English on a Chinese
page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "issuer" / "translations" / "zh" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|\{[a-z_]+\}")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


@pytest.fixture(scope="module")
def extracted() -> dict[str, str]:
    """Each message id used in the source, with one place it is used."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        singular = message[0] if isinstance(message, tuple) else message
        if singular:
            found.setdefault(singular, f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    with CATALOG.open("rb") as handle:
        return read_po(handle, locale="zh")


def test_the_source_has_messages_to_translate(extracted: dict[str, str]) -> None:
    assert "Sign in" in extracted
    assert len(extracted) > 300


def test_every_message_has_a_chinese_translation(extracted: dict[str, str], catalog) -> None:  # type: ignore[no-untyped-def]
    missing = []
    for msgid, where in sorted(extracted.items()):
        entry = catalog.get(msgid)
        strings = () if entry is None else (entry.string if isinstance(entry.string, tuple) else (entry.string,))
        if entry is None or not strings or not all(strings) or entry.fuzzy:
            missing.append(f"{where}: {msgid!r}")
    assert not missing, "untranslated (run `make i18n-extract` and translate):\n" + "\n".join(missing)


def test_translations_keep_every_placeholder(catalog) -> None:  # type: ignore[no-untyped-def]
    wrong = []
    for entry in catalog:
        if not entry.id or not entry.string:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        expected = set(PLACEHOLDER.findall(ids[-1])) | set(PLACEHOLDER.findall(ids[0]))
        for text in strings:
            if text and set(PLACEHOLDER.findall(text)) != expected:
                wrong.append(f"{ids[0]!r} → {text!r}")
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)
