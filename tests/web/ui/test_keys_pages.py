"""The seal key pages: generate, rotate (old keys stay published), import a CA-issued key and
chain, the seal image — each for its own manufacturer only, with the service's errors shown."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select

from issuer.models import AuditEntry, Manufacturer, SealKey
from issuer.sealing.keys import read_private_key
from issuer.services import keys
from tests import factories
from tests.web.ui.admin_support import page
from tests.web.ui.admin_support import user as make_user


def png(size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (size, size), (200, 0, 0, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def maker(session) -> Manufacturer:
    return factories.manufacturer(session, "ACME", wmis=("LGX",))


@pytest.fixture
def other_maker(session) -> Manufacturer:
    return factories.manufacturer(session, "OTHER", wmis=("LRW",))


@pytest.fixture
def admin_browser(make_browser, session, maker):  # type: ignore[no-untyped-def]
    return make_browser(make_user(session, "manufacturer_admin", manufacturer=maker))


def keys_of(session, manufacturer: Manufacturer) -> list[SealKey]:  # type: ignore[no-untyped-def]
    session.expire_all()
    return keys.keys_of(session, manufacturer)


def test_manufacturer_admin_generates_then_rotates_and_the_old_key_stays_published(
    admin_browser, client, session, settings, maker
):
    assert admin_browser.get("/admin/keys").headers["Location"].endswith("/admin/keys/ACME")
    empty = page(admin_browser.get("/admin/keys/ACME"))
    assert "There is no seal key yet" in empty
    assert "Generate a seal key" in empty

    generated = admin_browser.post("/admin/keys/ACME/generate", {}, form_page="/admin/keys/ACME")
    assert generated.status_code == 302
    (first,) = keys_of(session, maker)
    # stored in the configured keys folder, encrypted with the configured passphrase, as the CLI does
    read_private_key(settings.keys_dir / first.key_file, passphrase=settings.seal_passphrase)
    shown = page(admin_browser.get("/admin/keys/ACME"))
    assert first.kid in shown
    assert "ECDSA-secp256r1-SHA256" in shown
    assert "Self-issued (generated here)" in shown
    assert maker.uscc in shown  # the subject names the credit code
    assert "PRIVATE KEY-----" not in shown
    assert 'data-confirm="Rotate the seal key of ACME?' in shown

    again = admin_browser.post("/admin/keys/ACME/generate", {}, form_page="/admin/keys/ACME")
    assert again.status_code == 409  # there is a key already: rotating is the way
    assert "already has the seal key" in page(again)

    rotated = admin_browser.post("/admin/keys/ACME/rotate", {}, form_page="/admin/keys/ACME")
    assert rotated.status_code == 302
    current, old = keys_of(session, maker)
    assert old.kid == first.kid
    assert old.retired_at is not None
    assert current.retired_at is None
    shown = page(admin_browser.get("/admin/keys/ACME"))
    assert "Retired keys" in shown
    assert shown.index(current.kid) < shown.index(old.kid)

    published = {k["kid"]: k for k in client.get("/.well-known/letter-keys.json").get_json()["keys"]}
    assert published[old.kid]["retired_at"] is not None
    assert published[current.kid]["retired_at"] is None
    actions = set(session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "key")))
    assert {"key.generated", "key.rotated"} <= actions


def test_import_of_a_ca_issued_key_makes_it_the_signing_key(admin_browser, session, maker):
    key_pem, bundle = factories.ca_issued(maker.uscc, content_commitment=True)
    answer = admin_browser.post(
        "/admin/keys/ACME/import",
        {"key": (io.BytesIO(key_pem), "seal.key.pem"), "certificate": (io.BytesIO(bundle), "chain.pem")},
        form_page="/admin/keys/ACME",
    )
    assert answer.status_code == 302, page(answer)
    (imported,) = keys_of(session, maker)
    assert imported.source == "imported"
    assert imported.chain_pem  # the CA certificate is kept for verifiers
    shown = page(admin_browser.get("/admin/keys/ACME"))
    assert "Issued by a certificate authority (imported)" in shown
    assert "CN=Test Root CA" in shown
    assert "PRIVATE KEY-----" not in shown


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("not_pem", "the private key cannot be read"),
        ("other_uscc", "does not name ACME's credit code"),
        ("no_non_repudiation", "does not allow non-repudiation"),
        ("mismatch", "no certificate in the file belongs to the private key"),
    ],
)
def test_import_refuses_bad_material_with_a_clear_error(admin_browser, session, maker, problem, expected):
    key_pem, bundle = factories.ca_issued(maker.uscc, content_commitment=problem != "no_non_repudiation")
    if problem == "not_pem":
        key_pem = b"this is not a key"
    if problem == "other_uscc":
        key_pem, bundle = factories.ca_issued(factories.uscc(999), content_commitment=True)
    if problem == "mismatch":
        key_pem, _ = factories.ca_issued(maker.uscc, content_commitment=True)
    answer = admin_browser.post(
        "/admin/keys/ACME/import",
        {"key": (io.BytesIO(key_pem), "seal.key.pem"), "certificate": (io.BytesIO(bundle), "chain.pem")},
        form_page="/admin/keys/ACME",
    )
    assert answer.status_code == 422
    assert expected in page(answer)
    assert keys_of(session, maker) == []


def test_import_without_files_shows_the_error_beside_the_file_fields(admin_browser, session, maker):
    answer = admin_browser.post("/admin/keys/ACME/import", {}, form_page="/admin/keys/ACME")
    assert answer.status_code == 422
    text = page(answer)
    assert 'id="key-error">Choose the private key file.' in text
    assert 'id="certificate-error">Choose the certificate file.' in text


def test_seal_image_upload_good_and_bad_and_its_preview(admin_browser, make_browser, session, maker, other_maker):
    assert "No seal image yet" in page(admin_browser.get("/admin/keys/ACME"))
    assert admin_browser.get("/admin/keys/ACME/seal.png").status_code == 404

    bad = admin_browser.post(
        "/admin/keys/ACME/seal-image",
        {"image": (io.BytesIO(b"GIF89a not a png"), "seal.gif")},
        form_page="/admin/keys/ACME",
    )
    assert bad.status_code == 422
    assert "the seal image must be a PNG file" in page(bad)

    image = png()
    good = admin_browser.post(
        "/admin/keys/ACME/seal-image", {"image": (io.BytesIO(image), "seal.png")}, form_page="/admin/keys/ACME"
    )
    assert good.status_code == 302
    shown = page(admin_browser.get("/admin/keys/ACME"))
    assert '<img src="/admin/keys/ACME/seal.png"' in shown
    preview = admin_browser.get("/admin/keys/ACME/seal.png")
    assert preview.status_code == 200
    assert preview.mimetype == "image/png"
    assert preview.data == image

    stranger = make_browser(make_user(session, "manufacturer_admin", manufacturer=other_maker))
    assert stranger.get("/admin/keys/ACME/seal.png").status_code == 404


def test_another_manufacturers_keys_are_not_found(admin_browser, session, other_maker):
    for path in ("/admin/keys/OTHER", "/admin/keys/OTHER/seal.png", "/admin/keys?manufacturer=OTHER"):
        assert admin_browser.get(path).status_code in (302, 404)
        if admin_browser.get(path).status_code == 302:  # the chooser sends it to its own keys only
            assert admin_browser.get(path).headers["Location"].endswith("/admin/keys/ACME")
    for path in ("/admin/keys/OTHER/generate", "/admin/keys/OTHER/rotate", "/admin/keys/OTHER/seal-image"):
        assert admin_browser.post(path, {}, form_page="/admin/keys/ACME").status_code == 404
    assert keys_of(session, other_maker) == []


def test_platform_admin_chooses_a_manufacturer_and_manages_its_keys(make_browser, session, maker, other_maker):
    browser = make_browser(make_user(session, "platform_admin"))
    chooser = page(browser.get("/admin/keys"))
    assert "ACME" in chooser
    assert "OTHER" in chooser
    assert browser.get("/admin/keys?manufacturer=other").headers["Location"].endswith("/admin/keys/OTHER")
    assert browser.get("/admin/keys?manufacturer=NOPE").status_code == 404

    answer = browser.post("/admin/keys/OTHER/generate", {}, form_page="/admin/keys/OTHER")
    assert answer.status_code == 302
    assert len(keys_of(session, other_maker)) == 1
    assert "Ready" in page(browser.get("/admin/manufacturers"))


def test_key_forms_need_the_csrf_token(admin_browser, session, maker):
    answer = admin_browser.client.post("/admin/keys/ACME/generate", data={})
    assert answer.status_code == 400
    assert keys_of(session, maker) == []
