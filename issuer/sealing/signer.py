"""The digital seal: a port (:class:`Sealer`) and its PAdES implementation (:class:`PadesSealer`).

The port keeps the sealing backend swappable: a GB/T 38540 (SM2/SM3) e-seal backend can be
added beside :class:`PadesSealer` without touching the services that issue letters.

What :class:`PadesSealer` writes, in ONE incremental update appended to the unsigned PDF:

* the letter's JSON as an embedded file (``/Names /EmbeddedFiles``, MIME ``application/json``)
  that is also a document-level associated file (catalog ``/AF``, ``/AFRelationship /Data``);
* an invisible signature field ``Seal`` whose signature dictionary carries
  ``/SubFilter /ETSI.CAdES.detached`` (PAdES baseline B-B: SHA-256, a ``signing-certificate-v2``
  signed attribute, no CMS ``signing-time``; the signing time is the dictionary's ``/M``),
  ``/Name`` (the signer), ``/Reason``, ``/Location`` and ``/ContactInfo (kid=<key id>)``.

The ``signing-certificate-v2`` attribute lists the signer's certificate first (as PAdES requires)
and then every chain certificate embedded in the signature, so that no byte of the signature
container is left unsigned: a change to an embedded chain certificate is detectable too.

Every byte of that revision, the attachment included, is covered by the signature. The key id in
``/ContactInfo`` only names the key for people and tools; :mod:`issuer.sealing.check` identifies
the key by the signer certificate's public key, never by that claim.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Protocol

from asn1crypto import algos as asn1_algos
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from pyhanko.pdf_utils import embed, generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.attributes import CMSAttributeProvider, SignedAttributeProviderSpec
from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.general import SigningError, as_signing_certificate_v2
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, Signer
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko_certvalidator.registry import SimpleCertificateStore

SEAL_FIELD_NAME = "Seal"
ATTACHMENT_MIME_TYPE = "application/json"
KID_MARKER = "kid="


class SealingError(ValueError):
    """The PDF or the key cannot be sealed (unreadable PDF, unsupported key, naive time...)."""


@dataclass(frozen=True)
class SigningKey:
    """The key that seals, named by its key id, with its certificate and the chain that issued it."""

    kid: str
    private_key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


class Sealer(Protocol):
    """Seals an unsigned letter PDF: embeds the letter's data and signs the whole document."""

    name: str

    def seal(
        self,
        pdf: bytes,
        *,
        key: SigningKey,
        attachment: bytes,
        attachment_name: str,
        signer_name: str,
        reason: str,
        location: str,
        signing_time: dt.datetime,
    ) -> bytes: ...


def kid_contact_info(kid: str) -> str:
    """The ``/ContactInfo`` text that names the sealing key."""
    return f"{KID_MARKER}{kid}"


def kid_from_contact_info(contact_info: str | None) -> str | None:
    """The key id a signature dictionary's ``/ContactInfo`` claims, if any."""
    if contact_info and contact_info.startswith(KID_MARKER):
        return contact_info[len(KID_MARKER) :] or None
    return None


def _asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _signature_mechanism(private_key: PrivateKeyTypes) -> str:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return "sha256_ecdsa"
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "sha256_rsa"
    raise SealingError("only ECDSA and RSA seal keys are supported")


def _same_public_key(private_key: PrivateKeyTypes, certificate: x509.Certificate) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return private_key.public_key().public_bytes(serialization.Encoding.DER, spki) == (
        certificate.public_key().public_bytes(serialization.Encoding.DER, spki)
    )


class _CertificatesBinding(CMSAttributeProvider):
    """``signing-certificate-v2`` naming the signer's certificate, then each chain certificate."""

    attribute_type = "signing_certificate_v2"

    def __init__(self, certificates: Sequence[asn1_x509.Certificate]) -> None:
        self._certificates = certificates

    async def build_attr_value(self, dry_run: bool = False) -> tsp.SigningCertificateV2:
        ids = [tsp.ESSCertIDv2.load(as_signing_certificate_v2(c)["certs"][0].dump()) for c in self._certificates]
        return tsp.SigningCertificateV2({"certs": ids})


class _SealAttributes(SignedAttributeProviderSpec):
    """The signed attributes of a seal besides content type and digest: the certificate binding only
    (PAdES puts the signing time in the signature dictionary, not in the CMS)."""

    def __init__(self, certificates: Sequence[asn1_x509.Certificate]) -> None:
        self._certificates = certificates

    def signed_attr_providers(self, data_digest: bytes, digest_algorithm: str) -> Iterable[CMSAttributeProvider]:
        yield _CertificatesBinding(self._certificates)


class _KeySigner(Signer):
    """A pyHanko signer over an in-memory ``cryptography`` key (no re-serialisation per signature)."""

    def __init__(self, key: SigningKey) -> None:
        mechanism = _signature_mechanism(key.private_key)
        certificate = _asn1_certificate(key.certificate)
        chain = [_asn1_certificate(c) for c in key.chain if c != key.certificate]
        super().__init__(
            signing_cert=certificate,
            cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
            signature_mechanism=asn1_algos.SignedDigestAlgorithm({"algorithm": mechanism}),
            embed_roots=True,
        )
        self.signed_attr_prov_spec = _SealAttributes([certificate, *chain])
        self._private_key = key.private_key

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != "sha256":
            raise SealingError(f"seals are made with SHA-256, not {digest_algorithm}")
        private_key = self._private_key
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            return private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        if isinstance(private_key, rsa.RSAPrivateKey):
            return private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        raise SealingError("only ECDSA and RSA seal keys are supported")  # pragma: no cover - checked in __init__


class PadesSealer:
    """A PAdES baseline B-B seal made with pyHanko (ETSI.CAdES.detached, SHA-256)."""

    name = "pades"

    def seal(
        self,
        pdf: bytes,
        *,
        key: SigningKey,
        attachment: bytes,
        attachment_name: str,
        signer_name: str,
        reason: str,
        location: str,
        signing_time: dt.datetime,
    ) -> bytes:
        """Embed ``attachment`` and sign, in one incremental update appended to ``pdf``."""
        if signing_time.tzinfo is None or signing_time.utcoffset() is None:
            raise SealingError("the signing time must be timezone-aware")
        if not _same_public_key(key.private_key, key.certificate):
            raise SealingError(f"the certificate of key {key.kid} does not belong to its private key")
        signer = _KeySigner(key)
        try:
            writer = IncrementalPdfFileWriter(BytesIO(pdf))
        except Exception as exc:  # pyHanko raises several types on unreadable input
            raise SealingError(f"the PDF to seal cannot be read: {exc}") from exc
        if writer.prev.encrypted:
            raise SealingError("an encrypted PDF cannot be sealed")
        try:
            _embed_attachment(writer, attachment, attachment_name=attachment_name, when=signing_time)
        except (NotImplementedError, KeyError, TypeError) as exc:  # e.g. a nested EmbeddedFiles tree
            raise SealingError(f"the letter data cannot be embedded in this PDF: {exc}") from exc
        metadata = PdfSignatureMetadata(
            field_name=SEAL_FIELD_NAME,
            md_algorithm="sha256",
            subfilter=SigSeedSubFilter.PADES,
            name=signer_name,
            reason=reason,
            location=location,
            contact_info=kid_contact_info(key.kid),
        )
        pdf_signer = PdfSigner(metadata, signer, new_field_spec=SigFieldSpec(sig_field_name=SEAL_FIELD_NAME))
        try:
            return asyncio.run(_sign(pdf_signer, writer, signing_time.astimezone(dt.UTC)))
        except SigningError as exc:  # e.g. the PDF is sealed already
            raise SealingError(f"the PDF cannot be sealed: {exc}") from exc


def _embed_attachment(
    writer: IncrementalPdfFileWriter, data: bytes, *, attachment_name: str, when: dt.datetime
) -> None:
    stream = embed.EmbeddedFileObject.from_file_data(
        writer,
        data=data,
        mime_type=ATTACHMENT_MIME_TYPE,
        params=embed.EmbeddedFileParams(creation_date=when, modification_date=when),
    )
    spec = embed.FileSpec(
        file_spec_string=attachment_name,
        file_name=attachment_name,
        embedded_data=stream,
        description="The letter's data (JSON), sealed with the letter",
        af_relationship=generic.pdf_name("/Data"),
    )
    embed.embed_file(writer, spec)


async def _sign(pdf_signer: PdfSigner, writer: IncrementalPdfFileWriter, signing_time: dt.datetime) -> bytes:
    # PdfSigner.sign_pdf reads the system clock; the session steps below are the same pipeline with
    # the caller's signing time, which ends up in the signature dictionary's /M.
    session = pdf_signer.init_signing_session(writer)
    session.system_time = signing_time
    reserved = await session.estimate_signature_container_size(validation_info=None)
    document = session.prepare_tbs_document(validation_info=None, bytes_reserved=reserved)
    output = BytesIO()
    prepared, _ = document.digest_tbs_document(output=output)
    signed = await document.perform_signature(
        document_digest=prepared.document_digest,
        pdf_cms_signed_attrs=PdfCMSSignedAttributes(signing_time=signing_time),
    )
    await signed.post_signature_processing(output)
    return output.getvalue()
