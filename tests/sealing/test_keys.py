"""Seal keys: generation, import of a CA-issued chain, rotation, storage at rest, the key set."""

from __future__ import annotations

import datetime as dt
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from issuer import clock
from issuer.errors import Conflict, ValidationFailed
from issuer.models import SealKey
from issuer.sealing.keys import read_private_key
from issuer.services.keys import current_key, generate_key, import_key, published_keys, rotate_key
from tests import factories

PASSPHRASE = "unit-test-passphrase"


def test_generate_key_creates_encrypted_0600_file_and_certificate_naming_the_manufacturer(session, tmp_path):
    maker = factories.manufacturer(session)
    key = generate_key(session=session, manufacturer_code=maker.code, keys_dir=tmp_path, passphrase=PASSPHRASE)

    path = tmp_path / key.key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    read_private_key(path, passphrase=PASSPHRASE)  # decrypts with the right passphrase
    certificate = x509.load_pem_x509_certificate(key.certificate_pem.encode())
    subject = certificate.subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == maker.name
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value == maker.uscc
    assert key.kid.startswith(f"{maker.code}-")
    assert key.algorithm == "ECDSA-secp256r1-SHA256"


def test_private_key_is_refused_when_the_passphrase_is_wrong(session, tmp_path):
    maker = factories.manufacturer(session)
    key = generate_key(session=session, manufacturer_code=maker.code, keys_dir=tmp_path, passphrase=PASSPHRASE)
    with pytest.raises(ValueError, match="cannot be decrypted"):
        read_private_key(tmp_path / key.key_file, passphrase="another")


def test_generate_key_is_refused_when_a_key_already_signs(session, tmp_path):
    maker = factories.manufacturer(session)
    generate_key(session=session, manufacturer_code=maker.code, keys_dir=tmp_path, passphrase=PASSPHRASE)
    with pytest.raises(Conflict, match="keys rotate"):
        generate_key(session=session, manufacturer_code=maker.code, keys_dir=tmp_path, passphrase=PASSPHRASE)
    assert session.scalar(select(func.count()).select_from(SealKey)) == 1


def test_rotate_key_retires_the_old_key_and_keeps_it_published(session, tmp_path):
    maker = factories.manufacturer(session)
    old = generate_key(session=session, manufacturer_code=maker.code, keys_dir=tmp_path, passphrase=PASSPHRASE)
    new = rotate_key(session=session, manufacturer_code=maker.code, keys_dir=tmp_path, passphrase=PASSPHRASE)

    assert new.kid != old.kid
    assert current_key(session, maker).kid == new.kid
    published = {k["kid"]: k for k in published_keys(session)}
    assert published[old.kid]["retired_at"] is not None
    assert published[new.kid]["retired_at"] is None
    assert published[old.kid]["certificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_import_key_accepts_a_ca_issued_chain_naming_the_credit_code(session, tmp_path):
    maker = factories.manufacturer(session)
    generate_key(session=session, manufacturer_code=maker.code, keys_dir=tmp_path, passphrase=PASSPHRASE)
    key_pem, bundle = factories.ca_issued(maker.uscc)

    key = import_key(
        session=session,
        manufacturer_code=maker.code,
        key_pem=key_pem,
        certificates_pem=bundle,
        key_password=None,
        keys_dir=tmp_path,
        passphrase=PASSPHRASE,
    )

    assert key.source == "imported"
    assert "Test Root CA" in x509.load_pem_x509_certificate(key.chain_pem.encode()).subject.rfc4514_string()
    assert current_key(session, maker).kid == key.kid
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / key.key_file).read_bytes()


@pytest.mark.parametrize("problem", ["other_uscc", "expired", "mismatched_key", "garbage"])
def test_import_key_is_refused_and_nothing_changes_when_the_material_is_wrong(session, tmp_path, problem):
    maker = factories.manufacturer(session)
    first = generate_key(session=session, manufacturer_code=maker.code, keys_dir=tmp_path, passphrase=PASSPHRASE)
    key_pem, bundle = factories.ca_issued(maker.uscc)
    if problem == "other_uscc":
        key_pem, bundle = factories.ca_issued(factories.uscc(999))
    elif problem == "expired":
        key_pem, bundle = factories.ca_issued(maker.uscc, days=10, not_before=clock.now_utc() - dt.timedelta(days=30))
    elif problem == "mismatched_key":
        key_pem = factories.ca_issued(maker.uscc)[0]
    else:
        bundle = b"not a certificate"
    files_before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(ValidationFailed):
        import_key(
            session=session,
            manufacturer_code=maker.code,
            key_pem=key_pem,
            certificates_pem=bundle,
            key_password=None,
            keys_dir=tmp_path,
            passphrase=PASSPHRASE,
        )

    assert current_key(session, maker).kid == first.kid
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before


def test_key_set_endpoint_publishes_every_key_with_its_certificate(client, session, tmp_path):
    maker = factories.manufacturer(session)
    old = generate_key(session=session, manufacturer_code=maker.code, keys_dir=tmp_path, passphrase=PASSPHRASE)
    new = rotate_key(session=session, manufacturer_code=maker.code, keys_dir=tmp_path, passphrase=PASSPHRASE)

    response = client.get("/.well-known/letter-keys.json")

    assert response.status_code == 200
    keys = {k["kid"]: k for k in response.json["keys"]}
    assert set(keys) >= {old.kid, new.kid}
    for kid in (old.kid, new.kid):
        assert set(keys[kid]) >= {"kid", "manufacturer", "alg", "not_before", "retired_at", "certificate"}
        x509.load_pem_x509_certificate(keys[kid]["certificate"].encode())
    assert "PRIVATE" not in response.get_data(as_text=True)


def test_keys_cli_generates_rotates_and_reports_errors_with_exit_code_2(cli, session, app):
    maker = factories.manufacturer(session)
    first = cli.invoke(args=["keys", "generate", "--manufacturer", maker.code])
    assert first.exit_code == 0, first.output
    again = cli.invoke(args=["keys", "generate", "--manufacturer", maker.code])
    assert again.exit_code == 2
    assert "error:" in again.output
    rotated = cli.invoke(args=["keys", "rotate", "--manufacturer", maker.code])
    assert rotated.exit_code == 0, rotated.output
    unknown = cli.invoke(args=["keys", "rotate", "--manufacturer", "NOPE"])
    assert unknown.exit_code == 2
    assert "no manufacturer" in unknown.output
    keys_dir = app.config["ISSUER_SETTINGS"].keys_dir
    assert len(list(keys_dir.glob("*.key.pem"))) == 2
