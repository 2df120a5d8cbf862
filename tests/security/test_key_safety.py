"""Private seal keys: kept 0600 in a 0700 folder, never logged, never served, archived only
encrypted.

How:
- Modes: the key files and their folder after generate, rotate and import (by the services the
  CLI and the pages call), also when the folder existed before as a checkout leaves it (0755).
  ``tests/sealing/test_keys.py`` already checks a generated file's 0600 and its encryption.
- Logs and answers: every log record at DEBUG (every logger) is captured while keys are
  generated, a passphrase-protected CA key is imported on the page (and refused with a wrong
  password), a letter is issued through the API, and issued again by a server whose
  passphrase does not open the key; the records (with their tracebacks), the exception texts
  and every answer are searched for a private key's PEM armour, the passphrases and the import password,
  and each key's secret in the forms it could leak in (the private number in decimal, hex and
  base64, the start of its PEM, the encrypted file's lines).
- Serving: the private key file is asked for by every path that could reach it — ``/keys/``,
  ``/static/`` with ``..`` plain, percent-encoded and double-encoded, the real relative path
  from the static folder to the keys folder, absolute paths — anonymously and signed in as an
  administrator: each answer is a 404 without the key. The published key set holds exactly the
  public fields, and each certificate is the one of the private key. The administrators' key
  pages show no private material.
- The backup: every key member of an archive written by ``issuer backup`` is an ENCRYPTED
  PRIVATE KEY that opens with the passphrase (and only with it), and the whole uncompressed
  archive holds no unencrypted key, no passphrase and no key secret (a key found unencrypted
  on disk is refused: ``tests/security/test_backup_restore.py``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import logging
import os
import stat
import tarfile
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from issuer import create_app
from issuer.config import Settings
from issuer.db import make_engine
from issuer.migrate import upgrade
from issuer.models import Manufacturer, SealKey, User
from issuer.services import accounts
from issuer.services.keys import current_key, generate_key, import_key, rotate_key
from tests import factories
from tests.conftest import TODAY
from tests.web.ui.admin_support import user as english_user
from tests.web.ui.conftest import Browser

REGISTERED_ON = TODAY - dt.timedelta(days=30)
APPLYING_ON = TODAY + dt.timedelta(days=10)
IMPORT_PASSWORD = "import-file-password-7f3a"
PUBLIC_FIELDS = {
    "kid",
    "manufacturer",
    "manufacturer_name",
    "alg",
    "not_before",
    "not_after",
    "created_at",
    "retired_at",
    "source",
    "certificate",
    "chain",
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def secrets_of(key_file: Path, passphrase: str) -> list[str]:
    """The forms in which a key's secret could leak: the private number (decimal, hex, base64 of
    its 32 bytes), the start of its unencrypted PEM (the rest of a PKCS#8 EC key carries the
    public point, which certificates rightly show), and the encrypted file's lines."""
    private_key = serialization.load_pem_private_key(key_file.read_bytes(), password=passphrase.encode())
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    first_line = pem.splitlines()[1]
    encrypted_body = [line for line in key_file.read_text().splitlines() if line and not line.startswith("-----")]
    number = private_key.private_numbers().private_value
    raw = number.to_bytes(32, "big")
    return [first_line, *encrypted_body, str(number), f"{number:x}", raw.hex(), base64.b64encode(raw).decode()]


def assert_holds_no_secret(text: str, secrets: list[str], where: str) -> None:
    # The PEM armour of any private key, encrypted or not (the import form's help text may say
    # "BEGIN PRIVATE KEY" to name the file it wants: that is not a key).
    assert "PRIVATE KEY-----" not in text, where
    for secret in secrets:
        assert secret not in text, f"{where} holds a secret: {secret[:12]}…"


def password_protected(key_pem: bytes, password: str) -> bytes:
    private_key = serialization.load_pem_private_key(key_pem, password=None)
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )


# -- modes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder_before", ["missing", "a checkout's 0755 folder"])
def test_key_files_are_0600_in_a_0700_folder_after_generate_rotate_and_import(
    session: Session, tmp_path: Path, folder_before: str
) -> None:
    keys_dir = tmp_path / "keys"
    if folder_before != "missing":
        keys_dir.mkdir()
        os.chmod(keys_dir, 0o755)  # noqa: S103 - the mode a checkout gives, to be closed
        (keys_dir / "README.md").write_text("Seal keys live here.\n")
    maker = factories.manufacturer(session)
    passphrase = "modes-passphrase"

    generated = generate_key(session=session, manufacturer_code=maker.code, keys_dir=keys_dir, passphrase=passphrase)
    assert mode(keys_dir) == 0o700
    rotated = rotate_key(session=session, manufacturer_code=maker.code, keys_dir=keys_dir, passphrase=passphrase)
    key_pem, bundle = factories.ca_issued(maker.uscc, content_commitment=True)
    imported = import_key(
        session=session,
        manufacturer_code=maker.code,
        key_pem=key_pem,
        certificates_pem=bundle,
        key_password=None,
        keys_dir=keys_dir,
        passphrase=passphrase,
    )

    assert mode(keys_dir) == 0o700
    for key in (generated, rotated, imported):
        path = keys_dir / key.key_file
        assert mode(path) == 0o600, key.source
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # The CA's key arrived unencrypted; at rest it is encrypted like the others.
    assert key_pem not in (keys_dir / imported.key_file).read_bytes()


# -- logs, exceptions and answers -----------------------------------------------------------------


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher

    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def test_no_key_or_passphrase_reaches_a_log_an_error_or_an_answer(
    app: Flask, settings: Settings, bound_database: Any, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    errors: list[str] = []

    maker = factories.manufacturer(session, "SAFE", wmis=("LGX",))
    generated = app.test_cli_runner().invoke(args=["keys", "generate", "--manufacturer", "SAFE"])
    answers.append(generated.output)
    vins = factories.random_vins("LGX", 2, seed=41)
    factories.register(session, maker, vins)
    factories.outlet(session, maker, country="KZ")
    exporter = factories.exporter(session)
    clerk = factories.user(session, "exporter", exporter=exporter)
    staff = factories.user(session, "aftersales", manufacturer=maker)
    clerk_token, staff_token = factories.token(session, clerk), factories.token(session, staff)
    admin = english_user(session, "manufacturer_admin", manufacturer=maker)
    browser = Browser(app.test_client()).sign_in(admin)

    # A CA key protected by a password: a wrong password is refused, the right one imports it.
    key_pem, bundle = factories.ca_issued(maker.uscc, content_commitment=True)
    protected = password_protected(key_pem, IMPORT_PASSWORD)
    for password in ("a-wrong-import-password", IMPORT_PASSWORD):
        page = browser.post(
            "/admin/keys/SAFE/import",
            {
                "key": (io.BytesIO(protected), "seal.key.pem"),
                "certificate": (io.BytesIO(bundle), "chain.pem"),
                "key_password": password,
            },
            form_page="/admin/keys/SAFE",
        )
        answers.append(page.get_data(as_text=True))
    assert page.status_code == 302
    answers.append(browser.get("/admin/keys/SAFE").get_data(as_text=True))
    session.expire_all()
    signing = current_key(session, session.get(Manufacturer, maker.id))
    assert signing.source == "imported"

    def issue(client: Any, vin: str) -> Any:
        filed = client.post(
            "/api/v1/requests",
            json={
                "manufacturer": "SAFE",
                "application_date": APPLYING_ON.isoformat(),
                "vehicles": [
                    {
                        "vin": vin,
                        "brand": "Example",
                        "model": "E1",
                        "registration_date": REGISTERED_ON.isoformat(),
                        "destination": "KZ",
                    }
                ],
            },
            headers={"Authorization": f"Bearer {clerk_token}"},
        )
        answers.append(filed.get_data(as_text=True))
        assert filed.status_code == 201, filed.json
        decided = client.post(
            f"/api/v1/requests/{filed.json['id']}/decision",
            json={"approve": "all_eligible"},
            headers={"Authorization": f"Bearer {staff_token}"},
        )
        answers.append(decided.get_data(as_text=True))
        return decided

    assert issue(app.test_client(), vins[0]).status_code == 200
    # A server whose passphrase does not open the key: the decision is refused, saying why.
    wrong_settings = dataclasses.replace(settings, key_passphrase="the-wrong-server-passphrase")
    wrong = create_app(wrong_settings, database=bound_database)
    wrong.config["TESTING"] = True
    refused = issue(wrong.test_client(), vins[1])
    assert refused.status_code == 409, refused.json
    assert "cannot be decrypted with ISSUER_KEY_PASSPHRASE" in refused.json["error"]["message"]
    # The same refusal as the service raises it, in the CLI's words.
    with wrong.app_context():
        from issuer.sealing.keys import KeyMaterialError, read_private_key

        with pytest.raises(KeyMaterialError) as raised:
            read_private_key(settings.keys_dir / signing.key_file, passphrase="the-wrong-server-passphrase")
        errors.append(str(raised.value))

    key_files = sorted(settings.keys_dir.glob("*.key.pem"))
    assert len(key_files) == 2  # generated, then the imported one
    secrets = [s for path in key_files for s in secrets_of(path, settings.seal_passphrase)]
    secrets += [settings.seal_passphrase, "the-wrong-server-passphrase", IMPORT_PASSWORD, "a-wrong-import-password"]
    secrets += [line for line in key_pem.decode().splitlines() if line and not line.startswith("-----")]
    assert len(caplog.records) > 0  # the capture works: rendering and sealing log at DEBUG
    logged = caplog.text + "\n".join(
        record.getMessage() + repr(record.args) + str(record.exc_info) for record in caplog.records
    )
    assert_holds_no_secret(logged, secrets, "the logs")
    for number, answer in enumerate(answers):
        assert_holds_no_secret(answer, secrets, f"answer {number}")
    for error in errors:
        assert_holds_no_secret(error, secrets, "an exception")


# -- never served ---------------------------------------------------------------------------------


@pytest.fixture
def make_browser(app: Flask):  # type: ignore[no-untyped-def]
    """A new client signed in through the login form as ``user``."""
    return lambda user: Browser(app.test_client()).sign_in(user)


@pytest.fixture
def keyed(app: Flask, session: Session, settings: Settings) -> tuple[Manufacturer, Path]:
    maker = factories.manufacturer(session, "SERVED", wmis=("LGX",))
    key = generate_key(
        session=session, manufacturer_code=maker.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
    )
    return maker, settings.keys_dir / key.key_file


def key_paths(app: Flask, key_file: Path) -> list[str]:
    """Every path that might lead a web server to the key file."""
    name = key_file.name
    relative = os.path.relpath(key_file, app.static_folder)  # ../../../tmp/…/keys/NAME
    absolute = str(key_file)
    quoted = urllib.parse.quote(relative, safe="")
    return [
        f"/keys/{name}",
        "/keys/",
        f"/static/../keys/{name}",
        f"/static/../../keys/{name}",
        f"/static/%2e%2e/keys/{name}",
        f"/static/%2e%2e%2fkeys%2f{name}",
        f"/static/..%2f..%2fkeys%2f{name}",
        f"/static/%252e%252e%252fkeys%252f{name}",
        f"/static/{relative}",
        f"/static/{quoted}",
        f"/static/{relative.replace('/', '%2f')}",
        f"/static/{relative.replace('/', chr(92))}",
        f"/static/{absolute}",
        f"/static//{absolute.lstrip('/')}",
        f"/{relative}",
        f"/.well-known/{name}",
        f"/.well-known/../keys/{name}",
        f"/api/v1/{name}",
        f"/verify/{name}",
        f"/admin/keys/SERVED/{name}",
        f"/admin/keys/SERVED/../../../keys/{name}",
    ]


def test_no_path_serves_the_keys_folder(
    app: Flask, session: Session, keyed: tuple[Manufacturer, Path], make_browser: Any
) -> None:
    maker, key_file = keyed
    secrets = secrets_of(key_file, app.config["ISSUER_SETTINGS"].seal_passphrase)
    clients = {
        "anonymous": app.test_client(),
        "platform admin": make_browser(english_user(session, "platform_admin")).client,
        "manufacturer admin": make_browser(english_user(session, "manufacturer_admin", manufacturer=maker)).client,
    }
    paths = key_paths(app, key_file)

    for who, client in clients.items():
        for path in paths:
            # A doubled slash is merged by a redirect first (308): its target must be a 404 too.
            answer = client.get(path, follow_redirects=True)
            assert answer.status_code == 404, (who, path, answer.status_code)
            assert_holds_no_secret(answer.get_data(as_text=True), secrets, f"{path} as {who}")
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")  # it was there to find


def test_the_published_key_set_holds_only_the_public_half(
    app: Flask, client: Any, session: Session, keyed: tuple[Manufacturer, Path], settings: Settings
) -> None:
    maker, _ = keyed
    rotate_key(
        session=session, manufacturer_code=maker.code, keys_dir=settings.keys_dir, passphrase=settings.seal_passphrase
    )
    files = {key.kid: settings.keys_dir / key.key_file for key in session.scalars(select(SealKey))}

    answer = client.get("/.well-known/letter-keys.json")

    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    published = {key["kid"]: key for key in answer.json["keys"]}
    assert set(published) == set(files)
    for kid, key in published.items():
        assert set(key) == PUBLIC_FIELDS
        certificate = x509.load_pem_x509_certificate(key["certificate"].encode())
        private_key = serialization.load_pem_private_key(
            files[kid].read_bytes(), password=settings.seal_passphrase.encode()
        )
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert certificate.public_key().public_bytes(*spki) == private_key.public_key().public_bytes(*spki)
        assert_holds_no_secret(text, secrets_of(files[kid], settings.seal_passphrase), "the key set")
        assert files[kid].name not in text  # not even where the file lies
    assert settings.seal_passphrase not in text


def test_the_key_pages_show_no_private_material(
    app: Flask, session: Session, keyed: tuple[Manufacturer, Path], settings: Settings, make_browser: Any
) -> None:
    maker, key_file = keyed
    secrets = [*secrets_of(key_file, settings.seal_passphrase), settings.seal_passphrase]
    pages = {
        "manufacturer admin": (
            make_browser(english_user(session, "manufacturer_admin", manufacturer=maker)),
            ["/admin/keys", "/admin/keys/SERVED"],
        ),
        "platform admin": (
            make_browser(english_user(session, "platform_admin")),
            ["/admin/keys", "/admin/keys?manufacturer=SERVED", "/admin/keys/SERVED"],
        ),
    }
    shown = 0
    for who, (browser, paths) in pages.items():
        for path in paths:
            answer = browser.get(path, follow_redirects=True)
            assert answer.status_code == 200, (who, path)
            page = answer.get_data(as_text=True)
            assert_holds_no_secret(page, secrets, f"{path} as {who}")
            shown += "SERVED-" in page  # the key is on the page, by its id only
    assert shown >= 2


# -- the backup archive ---------------------------------------------------------------------------


def test_the_backup_archive_holds_the_keys_only_encrypted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'issuer.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = Settings(
        database_url=url, keys_dir=tmp_path / "keys", key_passphrase="archive-passphrase", ratelimit_enabled=False
    )
    app = create_app(settings)
    database = app.extensions["issuer.db"]
    with database.session() as session:
        maker = factories.manufacturer(session)
        where = {"keys_dir": settings.keys_dir, "passphrase": "archive-passphrase"}
        generate_key(session=session, manufacturer_code=maker.code, **where)
        rotate_key(session=session, manufacturer_code=maker.code, **where)
        key_pem, bundle = factories.ca_issued(maker.uscc, content_commitment=True)
        import_key(
            session=session,
            manufacturer_code=maker.code,
            key_pem=key_pem,
            certificates_pem=bundle,
            key_password=None,
            keys_dir=settings.keys_dir,
            passphrase="archive-passphrase",
        )
        assert session.scalar(select(User.id)) is None  # keys alone: the archive is about them
    archive = tmp_path / "backup.tar.gz"

    result = app.test_cli_runner().invoke(args=["backup", str(archive)])

    assert result.exit_code == 0, result.output
    assert mode(archive) == 0o600
    key_files = sorted(settings.keys_dir.glob("*.key.pem"))
    secrets = [s for path in key_files for s in secrets_of(path, "archive-passphrase")]
    with tarfile.open(archive, "r:gz") as tar:
        keys = {
            member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.name.startswith("keys/")
        }
    assert len(keys) == 3
    for name, content in keys.items():
        assert content.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"), name
        assert serialization.load_pem_private_key(content, password=b"archive-passphrase") is not None
        with pytest.raises((TypeError, ValueError)):
            serialization.load_pem_private_key(content, password=None)  # no key opens without it
    with tarfile.open(archive, "r:gz") as tar:  # the whole archive, every member, uncompressed
        whole = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()).decode()  # type: ignore[union-attr]
    plain_secrets = [s for s in secrets if s not in "".join(k.decode() for k in keys.values())]
    for marker in ("BEGIN PRIVATE KEY", "BEGIN EC PRIVATE KEY", "BEGIN RSA PRIVATE KEY", "archive-passphrase"):
        assert marker not in whole
    for secret in plain_secrets:
        assert secret not in whole
    assert key_pem.decode().splitlines()[1] not in whole  # the CA's key as it was uploaded
    assert "PRIVATE KEY" not in caplog.text
    assert "archive-passphrase" not in caplog.text + result.output
    database.engine.dispose()

