"""Export destination countries: ISO 3166-1 alpha-2 codes with Chinese and English names."""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from functools import cache

import pycountry

# China is where the vehicles leave from, never where they go to.
NOT_A_DESTINATION = frozenset({"CN"})

# GB/T 2659 short names where pycountry's zh_CN translation differs: it gives long forms
# (大韩民国), older spellings (瓜地马拉) and a few typos (柬埔塞). Hong Kong, Macao and Taiwan
# are named as parts of China, as Chinese official documents require.
_NAME_ZH_OVERRIDES = {
    "BD": "孟加拉国",
    "BO": "玻利维亚",
    "BV": "布韦岛",
    "CC": "科科斯（基林）群岛",
    "CD": "刚果（金）",
    "CG": "刚果（布）",
    "FK": "福克兰群岛（马尔维纳斯）",
    "FM": "密克罗尼西亚联邦",
    "GS": "南乔治亚岛和南桑德韦奇群岛",
    "GT": "危地马拉",
    "HK": "中国香港",
    "HM": "赫德岛和麦克唐纳岛",
    "IM": "马恩岛",
    "IR": "伊朗",
    "KG": "吉尔吉斯斯坦",
    "KH": "柬埔寨",
    "KP": "朝鲜",
    "KR": "韩国",
    "LA": "老挝",
    "MD": "摩尔多瓦",
    "MO": "中国澳门",
    "MT": "马耳他",
    "PF": "法属波利尼西亚",
    "SJ": "斯瓦尔巴岛和扬马延岛",
    "SY": "叙利亚",
    "TF": "法属南部领地",
    "TW": "中国台湾",
    "VE": "委内瑞拉",
}
_NAME_EN_OVERRIDES = {
    "HK": "Hong Kong, China",
    "MO": "Macao, China",
    "TW": "Taiwan, China",
}


@dataclass(frozen=True, slots=True)
class Country:
    """A destination country as printed on a letter."""

    alpha2: str
    name_zh: str
    name_en: str


@cache
def _destinations() -> dict[str, Country]:
    # Built on first use, not at import: reading the translation catalogue is the only
    # costly step, and most imports of this module (CLI commands) never need it.
    translations = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["zh_CN"])
    destinations: dict[str, Country] = {}
    for record in pycountry.countries:
        alpha2: str = record.alpha_2
        if alpha2 in NOT_A_DESTINATION:
            continue
        name: str = record.name
        name_en: str = getattr(record, "common_name", None) or name
        destinations[alpha2] = Country(
            alpha2=alpha2,
            name_zh=_NAME_ZH_OVERRIDES.get(alpha2) or translations.gettext(name),
            name_en=_NAME_EN_OVERRIDES.get(alpha2, name_en),
        )
    return destinations


def lookup_country(code: str) -> Country | None:
    """Return the destination country for an ISO 3166-1 alpha-2 code, in any case; else None.

    Only officially assigned codes count: blocs ("EU"), reserved and user-assigned codes
    ("EZ", "UN", "XK", "UK") and alpha-3 codes give None. "CN" gives None too, because
    China itself is never an export destination; Hong Kong (HK), Macao (MO) and Taiwan (TW)
    are separate customs territories and valid destinations.

    Only ASCII letters are read as a code: "ＫＺ", "КZ" (Cyrillic К) or "KZ\u200b" are no country,
    nor is "ß" or "ﬁ", whose upper case ("SS", "FI") is an ASCII code they do not spell.
    """
    code = code.strip()
    return _destinations().get(code.upper()) if code.isascii() else None


def all_countries() -> tuple[Country, ...]:
    """Return every valid destination, sorted by alpha-2 code."""
    return tuple(sorted(_destinations().values(), key=lambda country: country.alpha2))
