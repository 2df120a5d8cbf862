"""Destination countries: ISO 3166-1 alpha-2 codes with GB/T 2659 Chinese names."""

from __future__ import annotations

import dataclasses

import pycountry
import pytest

from issuer.domain.countries import Country, all_countries, lookup_country


@pytest.mark.parametrize("code", ["KZ", "kz", " Kz ", "kZ\t"])
def test_lookup_country_finds_kazakhstan_when_code_is_in_any_case_or_padded(code: str) -> None:
    assert lookup_country(code) == Country(alpha2="KZ", name_zh="哈萨克斯坦", name_en="Kazakhstan")


@pytest.mark.parametrize(
    "code",
    ["EU", "EZ", "UN", "XK", "UK", "CN", "cn", "", " ", "K", "KAZ", "398", "\uff2b\uff3a", "K\u0417"],
)
def test_lookup_country_returns_none_when_code_is_not_a_destination(code: str) -> None:
    assert lookup_country(code) is None


@pytest.mark.parametrize(
    ("code", "name_zh", "name_en"),
    [
        ("HK", "中国香港", "Hong Kong, China"),
        ("MO", "中国澳门", "Macao, China"),
        ("TW", "中国台湾", "Taiwan, China"),
    ],
)
def test_lookup_country_names_the_territory_as_part_of_china_when_hk_mo_or_tw(
    code: str, name_zh: str, name_en: str
) -> None:
    country = lookup_country(code)
    assert country is not None
    assert (country.name_zh, country.name_en) == (name_zh, name_en)


@pytest.mark.parametrize(
    ("code", "name_zh"),
    [
        ("KR", "韩国"),
        ("KP", "朝鲜"),
        ("CD", "刚果（金）"),
        ("CG", "刚果（布）"),
        ("LA", "老挝"),
        ("VN", "越南"),
        ("IR", "伊朗"),
        ("SY", "叙利亚"),
        ("MD", "摩尔多瓦"),
        ("TZ", "坦桑尼亚"),
        ("VE", "委内瑞拉"),
        ("BO", "玻利维亚"),
        ("RU", "俄罗斯"),
        ("AE", "阿联酋"),
        ("GB", "英国"),
        ("US", "美国"),
        ("KH", "柬埔寨"),
        ("KG", "吉尔吉斯斯坦"),
        ("UZ", "乌兹别克斯坦"),
    ],
)
def test_lookup_country_gives_the_gb_t_2659_short_name_when_asked(code: str, name_zh: str) -> None:
    country = lookup_country(code)
    assert country is not None
    assert country.name_zh == name_zh


@pytest.mark.parametrize(("code", "name_en"), [("RU", "Russian Federation"), ("KR", "South Korea"), ("VN", "Vietnam")])
def test_lookup_country_prefers_the_common_english_name_when_pycountry_has_one(code: str, name_en: str) -> None:
    country = lookup_country(code)
    assert country is not None
    assert country.name_en == name_en


def test_every_assigned_code_has_chinese_and_english_names_when_it_is_not_china() -> None:
    codes = {record.alpha_2 for record in pycountry.countries} - {"CN"}
    for code in codes:
        country = lookup_country(code)
        assert country is not None, code
        assert country.alpha2 == code
        assert country.name_zh.strip(), code
        assert country.name_en.strip(), code
        # A missing translation would leave the English msgid in place of the Chinese name.
        assert not country.name_zh.isascii(), code


def test_all_countries_is_sorted_and_leaves_out_china_when_listed() -> None:
    countries = all_countries()
    codes = [country.alpha2 for country in countries]
    assert codes == sorted(codes)
    assert "CN" not in codes
    assert len(codes) == len(set(codes)) == len(pycountry.countries) - 1
    assert {"HK", "MO", "TW", "KZ"} <= set(codes)


def test_country_refuses_changes_when_frozen() -> None:
    country = lookup_country("KZ")
    assert country is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        country.name_en = "Other"  # type: ignore[misc]
