"""The letter PDF: content, density, fonts, the sandbox and the verification QR code.

Text checks read the PDF back with pdftotext (poppler-utils); structure checks use qpdf.
The expensive 1,000-vehicle letter is rendered once per module.
"""

from __future__ import annotations

import base64
import logging
import re
import shutil
import struct
import subprocess
import threading
import zlib
from dataclasses import fields, replace
from datetime import date, timedelta
from pathlib import Path

import pytest
import segno

from issuer.domain.countries import lookup_country
from issuer.domain.letter import DestinationSection, LetterContent, LetterOutlet, LetterVehicle, Party
from issuer.domain.vin import with_check_digit
from issuer.rendering import (
    MissingGlyphs,
    RenderedLetter,
    RenderingError,
    ResourceRefused,
    SealMark,
    letter_html,
    render_letter,
)
from issuer.rendering import pdf as pdf_module
from issuer.rendering.qr import QUIET_ZONE

VERIFY_URL = "https://letters.example.cn/verify?code=7KQ4-M2XD-9PRA"
SEAL = SealMark(kid="byd-2026-09-a1b2c3", algorithm="ECDSA-secp256r1-SHA256")
ISSUER = Party("东岳汽车制造有限公司", "Dongyue Automobile Manufacturing Co., Ltd.", "91440300MA5DEXAMPL")
EXPORTER = Party(
    "深圳喆鑫犇二手车出口有限公司", "Shenzhen Zhexinben Used Vehicle Export Co., Ltd.", "91440300MA5EXPORTX"
)
MODELS = (
    ("东岳", "DY-E5 EV 2024款 715KM 前驱旗舰型"),
    ("岳峰", "YF-X9 2.0TD 自动两驱"),
    ("长城", "哈弗H6 第三代 1.5T"),
)


def make_vins(count: int, *, start: int = 0) -> list[str]:
    """Distinct VINs with correct check digits (WMI LGX, model year S)."""
    return [with_check_digit(f"LGXC74C40S{number:07d}") for number in range(start, start + count)]


def make_outlets(country: str, count: int = 2) -> tuple[LetterOutlet, ...]:
    return tuple(
        LetterOutlet(
            code=f"{country}-SVC-{index}",
            name=f"鑫犇汽车服务中心 {country} {index}",
            provider=f"Provider {country} {index} LLP",
            address=f"Kabanbay Batyr Ave {40 + index}",
            city=f"City{country}{index}",
            phone=f"+7 7172 55 66 {index:02d}",
            email=f"service{index}@{country.lower()}.example.com",
        )
        for index in range(1, count + 1)
    )


def make_letter(vehicles_per_country: dict[str, int], **changes: object) -> LetterContent:
    sections, start = [], 0
    for code, count in vehicles_per_country.items():
        country = lookup_country(code)
        assert country is not None
        vehicles = tuple(
            LetterVehicle(vin, *MODELS[index % 3], date(2026, 3, 1) + timedelta(days=index % 150))
            for index, vin in enumerate(make_vins(count, start=start))
        )
        start += count
        sections.append(DestinationSection(country, vehicles, make_outlets(code)))
    content = LetterContent(
        number="MIIT-2026-000123",
        verification_code="7KQ4-M2XD-9PRA",
        issued_on=date(2026, 9, 15),
        valid_until=date(2026, 12, 31),
        issuer=ISSUER,
        exporter=EXPORTER,
        destinations=tuple(sections),
        reference="CONTRACT-2026-0042",
    )
    return replace(content, **changes)


def seal_png(size: int = 120) -> bytes:
    """A red ring on a transparent background, as a PNG: a stand-in for an uploaded seal."""
    rows = []
    centre, outer, inner = size / 2, size / 2 - 2, size / 2 - 10
    for y in range(size):
        row = bytearray([0])  # filter type: none
        for x in range(size):
            distance = ((x - centre) ** 2 + (y - centre) ** 2) ** 0.5
            row += bytes((200, 20, 20, 255)) if inner <= distance <= outer else bytes(4)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def pdf_pages_text(pdf: bytes, tmp_path: Path) -> list[str]:
    """The text of each page, in reading order."""
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    result = run_tool("pdftotext", "-enc", "UTF-8", str(path), "-")
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\f")[:-1]  # pdftotext ends every page with a form feed


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    """Run one of poppler-utils' or qpdf's commands (installed by scripts/install-system-packages.sh)."""
    executable = shutil.which(command[0])
    assert executable, f"{command[0]} is not installed"
    return subprocess.run([executable, *command[1:]], capture_output=True, text=True, check=False)


def squeeze(text: str) -> str:
    """Text without whitespace, so words broken over lines in a table cell still match."""
    return "".join(text.split())


@pytest.fixture(scope="module")
def large_letter() -> tuple[LetterContent, RenderedLetter]:
    content = make_letter({"KZ": 340, "RU": 330, "AE": 330})
    return content, render_letter(content, verify_url=VERIFY_URL, seal=SEAL)


@pytest.fixture(scope="module")
def small_letter() -> tuple[LetterContent, RenderedLetter]:
    content = make_letter({"KZ": 30, "UZ": 3}, supersedes="MIIT-2026-000099")
    return content, render_letter(content, verify_url=VERIFY_URL, seal=SEAL)


def test_rendered_letter_is_a_pdf_that_qpdf_checks_clean(small_letter, tmp_path):
    _, rendered = small_letter
    assert rendered.pdf.startswith(b"%PDF-")
    path = tmp_path / "letter.pdf"
    path.write_bytes(rendered.pdf)
    check = run_tool("qpdf", "--check", str(path))
    assert check.returncode == 0, check.stdout + check.stderr


def test_rendered_letter_reports_its_page_count(small_letter, tmp_path):
    _, rendered = small_letter
    assert rendered.page_count == len(pdf_pages_text(rendered.pdf, tmp_path)) >= 2


def test_letter_prints_the_title_parties_dates_reference_and_superseded_letter(small_letter, tmp_path):
    content, rendered = small_letter
    text = squeeze("".join(pdf_pages_text(rendered.pdf, tmp_path)))
    for expected in (
        "售后维修服务确认书",
        "After-sales Maintenance Service Confirmation Letter",
        ISSUER.name,
        ISSUER.name_en,
        ISSUER.uscc,
        EXPORTER.name,
        EXPORTER.name_en,
        EXPORTER.uscc,
        "统一社会信用代码",
        content.number,
        "2026年9月15日",
        "15 September 2026",
        "2026年12月31日",
        "31 December 2026",
        "CONTRACT-2026-0042",
        "MIIT-2026-000099",
        "哈萨克斯坦",
        "Kazakhstan",
        "乌兹别克斯坦",
        "Uzbekistan",
    ):
        assert squeeze(expected) in text, expected


def test_letter_states_the_manufacturers_undertaking_in_chinese_and_english(small_letter, tmp_path):
    _, rendered = small_letter
    text = squeeze("".join(pdf_pages_text(rendered.pdf, tmp_path)))
    assert "本确认书所列33辆车辆均由我公司生产" in text
    assert "我公司承诺通过本确认书就该目的国（地区）列明的境外售后服务网点，为上述车辆提供售后维修服务" in text
    assert squeeze("The 33 vehicles listed in this letter were manufactured by our company") in text
    assert squeeze("undertakes to provide after-sales maintenance service for them through the overseas") in text
    assert text.index("我公司承诺") < text.index(squeeze("our company undertakes")), "Chinese comes first"


def test_letter_without_validity_reference_or_predecessor_leaves_them_out(tmp_path):
    content = make_letter({"KZ": 1}, valid_until=None, reference="", supersedes=None)
    html = letter_html(content, verify_url=VERIFY_URL, seal=SEAL)
    assert "有效期至" not in html
    assert "业务参考号" not in html
    assert "替代编号" not in html
    assert "supersedes" not in html.lower()


def test_every_vin_outlet_and_party_of_a_thousand_vehicle_letter_is_in_the_pdf_text(large_letter, tmp_path):
    content, rendered = large_letter
    text = "".join(pdf_pages_text(rendered.pdf, tmp_path))
    vins_printed = set(re.findall(r"\bLGX[0-9A-Z]{14}\b", text))
    expected_vins = {vehicle.vin for section in content.destinations for vehicle in section.vehicles}
    assert len(expected_vins) == 1000
    assert vins_printed == expected_vins
    squeezed = squeeze(text)
    for section in content.destinations:
        for outlet in section.outlets:
            for value in (outlet.name, outlet.provider, outlet.address, outlet.city, outlet.phone, outlet.email):
                assert squeeze(value) in squeezed, value


def test_outlets_are_printed_once_per_destination(large_letter, tmp_path):
    content, rendered = large_letter
    text = squeeze("".join(pdf_pages_text(rendered.pdf, tmp_path)))
    for section in content.destinations:
        for outlet in section.outlets:
            assert text.count(squeeze(outlet.provider)) == 1, outlet.provider


def test_a_thousand_vehicles_across_three_destinations_fit_in_35_pages(large_letter):
    _, rendered = large_letter
    assert rendered.page_count <= 35


def test_a_full_page_of_the_schedule_holds_at_least_forty_vehicles(large_letter, tmp_path):
    _, rendered = large_letter
    pages = pdf_pages_text(rendered.pdf, tmp_path)
    per_page = [len(re.findall(r"\bLGX[0-9A-Z]{14}\b", page)) for page in pages]
    assert max(per_page) >= 40, per_page


def test_thirty_vehicles_for_one_destination_are_printed_together_on_one_page(small_letter, tmp_path):
    content, rendered = small_letter
    kazakhstan = {vehicle.vin for vehicle in content.destinations[0].vehicles}
    pages = pdf_pages_text(rendered.pdf, tmp_path)
    assert any(kazakhstan <= set(re.findall(r"\bLGX[0-9A-Z]{14}\b", page)) for page in pages)


def test_every_page_names_issuer_exporter_letter_number_date_and_page_x_of_y(large_letter, tmp_path):
    content, rendered = large_letter
    pages = pdf_pages_text(rendered.pdf, tmp_path)
    total = len(pages)
    for number, page in enumerate(pages, start=1):
        squeezed = squeeze(page)
        for expected in (ISSUER.name, EXPORTER.name, content.number, "2026-09-15"):
            assert squeeze(expected) in squeezed, (number, expected)
        assert f"第{number}页/共{total}页" in squeezed, number
        assert f"Page{number}of{total}" in squeezed, number


def test_rare_chinese_characters_print_without_missing_glyphs(tmp_path):
    rare = "鑫喆犇垚淼焱赟昇"
    content = make_letter({"KZ": 2}, exporter=Party(f"{rare}二手车出口有限公司", "", "91440300MA5EXPORTX"))
    rendered = render_letter(content, verify_url=VERIFY_URL, seal=SEAL)
    assert rare in squeeze("".join(pdf_pages_text(rendered.pdf, tmp_path)))


def test_a_character_no_font_has_raises_missing_glyphs_instead_of_printing_a_box():
    content = make_letter({"KZ": 1})
    section = content.destinations[0]
    vehicle = replace(section.vehicles[0], brand="品牌\U000f0000")
    content = replace(content, destinations=(replace(section, vehicles=(vehicle,)),))
    with pytest.raises(MissingGlyphs) as raised:
        render_letter(content, verify_url=VERIFY_URL, seal=SEAL)
    assert raised.value.characters == ("\U000f0000",)
    assert "U+F0000" in str(raised.value)


def test_missing_glyphs_are_caught_even_when_weasyprint_logging_is_silenced():
    weasyprint_logger = logging.getLogger("weasyprint")
    previous = weasyprint_logger.level
    weasyprint_logger.setLevel(logging.CRITICAL)
    try:
        content = make_letter({"KZ": 1}, reference="参考\U000f0001")
        with pytest.raises(MissingGlyphs):
            render_letter(content, verify_url=VERIFY_URL, seal=SEAL)
    finally:
        weasyprint_logger.setLevel(previous)


def test_a_missing_glyph_in_another_thread_is_not_blamed_on_this_render():
    bad = make_letter({"KZ": 1}, reference="参考\U000f0002")
    outcome: list[BaseException] = []

    def render_bad_letter() -> None:
        try:
            render_letter(bad, verify_url=VERIFY_URL, seal=SEAL)
        except MissingGlyphs as error:
            outcome.append(error)

    with pdf_module._weasyprint_problems() as problems_seen_here:
        other = threading.Thread(target=render_bad_letter)
        other.start()
        other.join()
    assert len(outcome) == 1, "the other thread's render failed on its own missing glyph"
    assert problems_seen_here == []


def test_rendering_logs_no_weasyprint_warnings(caplog):
    content = make_letter({"KZ": 2})
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        render_letter(content, verify_url=VERIFY_URL, seal=replace(SEAL, image_png=seal_png()))
    assert [record.getMessage() for record in caplog.records if record.name.startswith("weasyprint")] == []


INJECTED = '<img src="file:///etc/passwd"><img src="http://canary.invalid/{field}.png">'


def test_markup_in_every_text_field_prints_as_text_and_is_never_fetched(monkeypatch, tmp_path):
    def payload(field: str) -> str:
        return INJECTED.format(field=field)

    outlet = LetterOutlet(*(payload(f"outlet-{field.name}") for field in fields(LetterOutlet)))
    content = make_letter(
        {"KZ": 1},
        number=payload("number"),
        verification_code=payload("code"),
        reference=payload("reference"),
        supersedes=payload("supersedes"),
        issuer=Party(payload("issuer-name"), payload("issuer-name-en"), payload("issuer-uscc")),
        exporter=Party(payload("exporter-name"), payload("exporter-name-en"), payload("exporter-uscc")),
    )
    section = content.destinations[0]
    vehicle = LetterVehicle(payload("vin"), payload("brand"), payload("model"), date(2026, 3, 1))
    content = replace(content, destinations=(replace(section, vehicles=(vehicle,), outlets=(outlet,)),))
    seal = SealMark(kid=payload("kid"), algorithm=payload("algorithm"))

    fetched: list[str] = []
    real_fetch = pdf_module.LockedDownFetcher.fetch

    def spy(self, url, headers=None):
        fetched.append(url)
        return real_fetch(self, url, headers)

    monkeypatch.setattr(pdf_module.LockedDownFetcher, "fetch", spy)
    html = letter_html(content, verify_url=VERIFY_URL, seal=seal)
    rendered = render_letter(content, verify_url=VERIFY_URL, seal=seal)

    assert '<img src="file:' not in html
    assert "&lt;img src=&#34;file:///etc/passwd&#34;&gt;" in html
    assert not [url for url in fetched if "passwd" in url or "canary" in url or url.startswith("http")]
    assert all(url.startswith(("data:", "file://")) for url in fetched)
    assert [url for url in fetched if url.startswith("file:")] == [(pdf_module.ASSET_DIR / "letter.css").as_uri()]
    # pdftotext drops a hyphen where a line breaks after it, so hyphens are compared away.
    text = squeeze("".join(pdf_pages_text(rendered.pdf, tmp_path))).replace("-", "")
    for field in (
        "issuer-name",
        "exporter-name",
        "reference",
        "brand",
        "model",
        "outlet-name",
        "outlet-provider",
        "outlet-address",
        "outlet-city",
        "outlet-phone",
        "outlet-email",
        "outlet-code",
        "kid",
    ):
        assert f"canary.invalid/{field.replace('-', '')}.png" in text, field
    assert squeeze('<img src="file:///etc/passwd">') in text


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "file://localhost/etc/passwd",
        "file://evil.example/share/letter.css",
        (pdf_module.ASSET_DIR / "letter.css").as_uri() + "?x=1",
        (pdf_module.ASSET_DIR / ".." / ".." / "pyproject.toml").as_uri(),
        (pdf_module.ASSET_DIR / "letter.html").as_uri(),
        (pdf_module.ASSET_DIR / "no-such-file.css").as_uri(),
        "http://canary.invalid/x.png",
        "https://canary.invalid/x.css",
        "ftp://canary.invalid/x",
        "//canary.invalid/x.png",
        "data:text/html,<script>alert(1)</script>",
        "data:image/png;base64,@@not-base64@@",
        "javascript:alert(1)",
    ],
)
def test_fetcher_refuses_everything_but_data_uris_and_bundled_assets(url):
    with pytest.raises(ResourceRefused):
        pdf_module.LockedDownFetcher().fetch(url)


def test_fetcher_refuses_a_symlink_that_leads_out_of_the_asset_folder(tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    (tmp_path / "secret.css").write_text("body {}")
    (assets / "escape.css").symlink_to(tmp_path / "secret.css")
    (assets / "inside.css").write_text("p {}")
    fetcher = pdf_module.LockedDownFetcher(assets)
    assert fetcher.fetch((assets / "inside.css").as_uri()).read() == b"p {}"
    with pytest.raises(ResourceRefused):
        fetcher.fetch((assets / "escape.css").as_uri())


def test_fetcher_serves_image_data_uris_and_the_letter_stylesheet():
    fetcher = pdf_module.LockedDownFetcher()
    png = seal_png(8)
    response = fetcher.fetch("data:image/png;base64," + base64.b64encode(png).decode())
    assert (response.read(), response.content_type) == (png, "image/png")
    stylesheet = fetcher.fetch((pdf_module.ASSET_DIR / "letter.css").as_uri())
    assert stylesheet.content_type == "text/css"
    assert b"@page" in stylesheet.read()


def test_html_asking_for_an_outside_resource_stops_the_render():
    html = '<html lang="zh-Hans"><body><p>测试</p><img src="http://canary.invalid/x.png"></body></html>'
    with pytest.raises(ResourceRefused) as raised:
        pdf_module._layout(html)
    assert raised.value.url == "http://canary.invalid/x.png"


def test_qr_code_in_the_letter_encodes_the_verify_url():
    html = letter_html(make_letter({"KZ": 1}), verify_url=VERIFY_URL, seal=SEAL)
    match = re.search(r'<img class="qr" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    assert match, "the QR code is an inline data: URI"
    svg = base64.b64decode(match.group(1)).decode("ascii")
    size = int(re.search(r'viewBox="0 0 (\d+) \1"', svg).group(1))
    drawn = [[False] * size for _ in range(size)]
    for x, y, run in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", svg):
        for column in range(int(x), int(x) + int(run)):
            drawn[int(y)][column] = True
    expected = segno.make(VERIFY_URL, error="m", micro=False)
    assert drawn == [[bool(module) for module in row] for row in expected.matrix_iter(border=QUIET_ZONE)]
    other = segno.make(VERIFY_URL + "X", error="m", micro=False)
    assert drawn != [[bool(module) for module in row] for row in other.matrix_iter(border=QUIET_ZONE)]


def test_verification_block_prints_url_code_and_how_to_verify(small_letter, tmp_path):
    content, rendered = small_letter
    text = squeeze(pdf_pages_text(rendered.pdf, tmp_path)[0])
    assert squeeze(VERIFY_URL) in text
    assert content.verification_code in text
    assert "扫码或访问网址核验" in text


def test_digital_seal_box_names_the_key_and_algorithm_when_there_is_no_seal_image(small_letter, tmp_path):
    _, rendered = small_letter
    text = squeeze(pdf_pages_text(rendered.pdf, tmp_path)[-1]).replace("-", "")
    for expected in ("电子签章", "Digitalseal", SEAL.kid, SEAL.algorithm, "盖章处"):
        assert expected.replace("-", "") in text, expected
    assert pdf_image_count(rendered.pdf, tmp_path) == 0


def test_uploaded_seal_image_is_printed_as_an_image(tmp_path):
    seal = replace(SEAL, image_png=seal_png())
    html = letter_html(make_letter({"KZ": 1}), verify_url=VERIFY_URL, seal=seal)
    assert "data:image/png;base64," + base64.b64encode(seal_png()).decode() in html
    rendered = render_letter(make_letter({"KZ": 1}), verify_url=VERIFY_URL, seal=seal)
    assert pdf_image_count(rendered.pdf, tmp_path) >= 1
    assert SEAL.kid.replace("-", "") in squeeze(pdf_pages_text(rendered.pdf, tmp_path)[-1]).replace("-", "")


def test_a_seal_image_that_is_not_a_png_is_refused():
    with pytest.raises(RenderingError):
        letter_html(make_letter({"KZ": 1}), verify_url=VERIFY_URL, seal=replace(SEAL, image_png=b"GIF89a..."))


def test_html_is_simplified_chinese_with_cjk_sc_fonts_named_first():
    html = letter_html(make_letter({"KZ": 1}), verify_url=VERIFY_URL, seal=SEAL)
    assert '<html lang="zh-Hans">' in html
    stylesheet = (pdf_module.ASSET_DIR / "letter.css").read_text(encoding="utf-8")
    families = re.findall(r"font-family:\s*([^;]+);", stylesheet)
    assert families
    for family in families:
        first = family.split(",")[0].strip().strip('"')
        assert first in {"Noto Sans CJK SC", "Noto Serif CJK SC", "DejaVu Sans Mono"}, family


def test_harfbuzz_subsetting_is_available_so_cjk_fonts_embed_in_seconds():
    from weasyprint.text.ffi import harfbuzz_subset

    assert harfbuzz_subset is not None, "install libharfbuzz-subset0: without it a CJK letter takes minutes"


def pdf_image_count(pdf: bytes, tmp_path: Path) -> int:
    path = tmp_path / "images.pdf"
    path.write_bytes(pdf)
    listing = run_tool("pdfimages", "-list", str(path))
    assert listing.returncode == 0, listing.stderr
    return len(listing.stdout.splitlines()) - 2  # two header lines
