"""Seal key material: generating a key with a self-issued certificate, loading an imported key
and chain, and storing private keys encrypted at rest (mode 0600, in a 0700 folder).

No database here: ``issuer.services.keys`` records what these functions produce.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

CERTIFICATE_YEARS = 5
PRIVATE_FILE_MODE = 0o600
PRIVATE_FOLDER_MODE = 0o700
MAX_COMMON_NAME_CHARS = 64  # RFC 5280 ub-common-name


class KeyMaterialError(ValueError):
    """A key or certificate cannot be used as a seal (wrong format, mismatch, expired...)."""


@dataclass(frozen=True)
class SealMaterial:
    """A private key with its certificate and the chain that issued it (may be empty)."""

    private_key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    @property
    def algorithm(self) -> str:
        public = self.certificate.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            return f"ECDSA-{public.curve.name}-SHA256"
        if isinstance(public, rsa.RSAPublicKey):
            return f"RSA-{public.key_size}-SHA256"
        raise KeyMaterialError("only ECDSA and RSA seal keys are supported")


def key_id(manufacturer_code: str, certificate: x509.Certificate) -> str:
    """A stable key id: the manufacturer code and the start of the public key's SHA-256."""
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"{manufacturer_code}-{hashlib.sha256(spki).hexdigest()[:16]}"


def seal_subject(*, name: str, uscc: str) -> x509.Name:
    """The certificate subject of a manufacturer's seal: its MIIT name and credit code.

    The organisation carries the whole name; the common name is only a label, cut to the 64
    characters X.509 allows it (RFC 5280 ub-common-name; a longer one is refused outright)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, uscc),
            x509.NameAttribute(NameOID.COMMON_NAME, name[:MAX_COMMON_NAME_CHARS]),
        ]
    )


def generate_material(*, name: str, uscc: str, now: dt.datetime) -> SealMaterial:
    """A new ECDSA P-256 key and a self-issued certificate naming the manufacturer."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    subject = seal_subject(name=name, uscc=uscc)
    public_key = private_key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CERTIFICATE_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    return SealMaterial(private_key=private_key, certificate=certificate, chain=())


def load_imported_material(*, key_pem: bytes, certificates_pem: bytes, key_password: bytes | None) -> SealMaterial:
    """A CA-issued key: the private key and a PEM bundle whose certificate for that key is the
    signer's, the others its chain."""
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=key_password)
    except (ValueError, TypeError) as exc:
        raise KeyMaterialError(f"the private key cannot be read: {exc}") from None
    try:
        certificates = x509.load_pem_x509_certificates(certificates_pem)
    except ValueError as exc:
        raise KeyMaterialError(f"the certificate file cannot be read: {exc}") from None
    wanted = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signer = [
        c
        for c in certificates
        if c.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        == wanted
    ]
    if not signer:
        raise KeyMaterialError("no certificate in the file belongs to the private key")
    chain = tuple(c for c in certificates if c is not signer[0])
    material = SealMaterial(private_key=private_key, certificate=signer[0], chain=chain)
    _ = material.algorithm  # refuses unsupported key types early
    return material


def write_private_key(material: SealMaterial, path: Path, *, passphrase: str) -> None:
    """Write the private key encrypted with the passphrase; the file is created with mode 0600
    and never overwritten, in a keys folder only its owner can open (0700)."""
    data = material.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
    )
    path.parent.mkdir(mode=PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
    # A folder made before (or by a checkout, 0755) is closed too: nobody else lists the keys.
    if stat.S_IMODE(path.parent.stat().st_mode) != PRIVATE_FOLDER_MODE:
        path.parent.chmod(PRIVATE_FOLDER_MODE)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def read_private_key(path: Path, *, passphrase: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=passphrase.encode("utf-8"))
    except FileNotFoundError:
        raise KeyMaterialError(f"the private key file {path.name} is missing from the keys folder") from None
    except (ValueError, TypeError):
        raise KeyMaterialError(f"the private key {path.name} cannot be decrypted with ISSUER_KEY_PASSPHRASE") from None


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
