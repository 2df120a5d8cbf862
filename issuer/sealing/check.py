"""The seal check: is this PDF a letter sealed by a trusted key, byte for byte as sealed?

:func:`check_pdf` reads the PDF with pyHanko and judges the first signature (the seal):

* **intact** — the signed byte ranges hash to the digest the signature signs, and the one gap in
  them holds exactly the signature container: canonical hex, zero padding after the DER and
  nothing else (pyHanko ignores that padding; a letter's check does not, so that no byte of the
  file can change unnoticed);
* **valid** — the CMS signature verifies with the embedded signer certificate, and the container
  is the strict shape a seal has: DER, one signer, detached ``data`` content, a
  ``signing-certificate-v2`` attribute binding every embedded certificate, no unsigned parts;
* **covers_whole_file** — nothing follows the signed revision: no incremental update (pyHanko's
  coverage level must be ``ENTIRE_FILE``) and no bytes after the last ``%%EOF``;
* **key_id** — the trusted key whose certificate has the signer certificate's public key. The
  ``kid=`` the signature dictionary claims (see :mod:`issuer.sealing.signer`) is only quoted in
  problems, never trusted;
* **key_valid_at_signing** — the signing time (the signature dictionary's ``/M``, which the
  signature covers; PAdES B-B has no trusted time) lies within that key's certificate validity,
  not before its ``not_before`` and not after its ``retired_at``. Times compare to the second,
  the precision of ``/M``.

It never raises on bad input; every failed check leaves a sentence in ``problems``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from asn1crypto import cms, parser
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.general import check_ess_certid
from pyhanko.sign.validation.generic_cms import get_signing_cert_attr, validate_sig_integrity
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from issuer.sealing.signer import kid_from_contact_info

# a name tree deeper or longer than this is not a letter's
_NAME_TREE_LIMIT = 10_000
_ACCEPTED_SUBFILTERS = ("/ETSI.CAdES.detached", "/adbe.pkcs7.detached")


@dataclass(frozen=True)
class TrustedKey:
    """A published seal key: every signature it made verifies, within its lifetime."""

    kid: str
    manufacturer: str
    certificate: x509.Certificate
    not_before: dt.datetime
    retired_at: dt.datetime | None


@dataclass(frozen=True)
class SignatureCheck:
    """What the check found; ``problems`` explains every failed check."""

    signed: bool
    intact: bool
    valid: bool
    covers_whole_file: bool
    key_id: str | None
    manufacturer: str | None
    signer: str | None
    signing_time: dt.datetime | None
    key_valid_at_signing: bool
    attachment: bytes | None
    problems: tuple[str, ...]

    @property
    def authentic(self) -> bool:
        return (
            self.signed
            and self.intact
            and self.valid
            and self.covers_whole_file
            and self.key_id is not None
            and self.key_valid_at_signing
        )


def trusted_key_from_published(entry: Mapping[str, Any]) -> TrustedKey:
    """A :class:`TrustedKey` from one entry of ``/.well-known/letter-keys.json`` (``published_keys``)."""
    retired_at = entry.get("retired_at")
    return TrustedKey(
        kid=str(entry["kid"]),
        manufacturer=str(entry["manufacturer"]),
        certificate=x509.load_pem_x509_certificate(str(entry["certificate"]).encode("ascii")),
        not_before=_aware(dt.datetime.fromisoformat(str(entry["not_before"]))),
        retired_at=_aware(dt.datetime.fromisoformat(str(retired_at))) if retired_at else None,
    )


def check_pdf(pdf: bytes, *, trusted: Sequence[TrustedKey], attachment_name: str = "letter.json") -> SignatureCheck:
    """Check the seal of a letter PDF against the trusted keys. Never raises on bad input."""
    findings = _Findings()
    try:
        _check(bytes(pdf), trusted, attachment_name, findings)
    except Exception as exc:  # a damaged file can break pyHanko in many ways; none may escape
        findings.problem(f"the seal cannot be checked: {_describe(exc)}")
    return findings.result()


@dataclass
class _Findings:
    signed: bool = False
    intact: bool = False
    valid: bool = False
    covers_whole_file: bool = False
    key: TrustedKey | None = None
    signer: str | None = None
    signing_time: dt.datetime | None = None
    key_valid_at_signing: bool = False
    attachment: bytes | None = None
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def result(self) -> SignatureCheck:
        check = SignatureCheck(
            signed=self.signed,
            intact=self.signed and self.intact,
            valid=self.signed and self.valid,
            covers_whole_file=self.signed and self.covers_whole_file,
            key_id=self.key.kid if self.key else None,
            manufacturer=self.key.manufacturer if self.key else None,
            signer=self.signer,
            signing_time=self.signing_time,
            key_valid_at_signing=self.key_valid_at_signing,
            attachment=self.attachment,
            problems=tuple(self.problems),
        )
        if not check.authentic and not check.problems:  # pragma: no cover - every failing path names itself
            return SignatureCheck(**{**check.__dict__, "problems": ("the seal could not be confirmed",)})
        return check


def _check(pdf: bytes, trusted: Sequence[TrustedKey], attachment_name: str, findings: _Findings) -> None:
    if not pdf:
        findings.problem("the file is empty")
        return
    if b"%PDF-" not in pdf[:1024]:
        findings.problem("the file is not a PDF (it has no %PDF- header)")
        return
    end = _end_of_document(pdf)
    if end is None:
        findings.problem("the PDF has no %%EOF marker: it is truncated or damaged")
        return
    appended = len(pdf) - end
    document = pdf[:end] if appended else pdf
    try:
        reader = PdfFileReader(BytesIO(document))
    except Exception as exc:
        findings.problem(f"the PDF cannot be read: {_describe(exc)}")
        return
    if reader.encrypted:
        findings.problem("the PDF is encrypted; a sealed letter never is")
        return

    signature = _first_signature(reader, findings)
    if signature is None:
        return
    findings.signed = True
    if appended:
        findings.problem(f"{appended} byte(s) were appended after the end of the sealed PDF")

    known_format = _read_signature_dictionary(signature, findings)
    certificate = _signer_certificate(signature, findings)
    _check_integrity(signature, document, certificate, findings)
    findings.valid = findings.valid and known_format
    coverage = _check_coverage(signature, appended=appended, findings=findings)
    if certificate is not None:
        _identify_key(signature, certificate, trusted, findings)
    if findings.intact and findings.valid and coverage >= SignatureCoverageLevel.ENTIRE_REVISION:
        findings.attachment = _signed_attachment(reader, signature.signed_revision, attachment_name)


def _end_of_document(pdf: bytes) -> int | None:
    """The length of the PDF up to and including its last %%EOF line; bytes after it were appended."""
    marker = pdf.rfind(b"%%EOF")
    if marker < 0:
        return None
    end = marker + len(b"%%EOF")
    if pdf[end : end + 2] == b"\r\n":
        return end + 2
    if pdf[end : end + 1] in (b"\n", b"\r"):
        return end + 1
    return end


def _first_signature(reader: PdfFileReader, findings: _Findings) -> EmbeddedPdfSignature | None:
    """The seal: the earliest signature of the file. A later one can only have been added after it."""
    try:
        fields = list(enumerate_sig_fields(reader, filled_status=True))
    except Exception as exc:
        findings.problem(f"the PDF's form fields cannot be read: {_describe(exc)}")
        return None
    if not fields:
        findings.problem("the PDF carries no digital seal (it has no signature)")
        return None
    signatures: list[EmbeddedPdfSignature] = []
    for name, _value, sig_field in fields:
        try:
            signatures.append(EmbeddedPdfSignature(reader, sig_field, name))
        except Exception as exc:
            findings.signed = True
            findings.problem(f"the signature {name!r} cannot be read: {_describe(exc)}")
    if not signatures:
        return None
    signatures.sort(key=lambda s: s.signed_revision)
    if len(fields) > 1:
        findings.problem(f"the PDF carries {len(fields)} signatures; a sealed letter carries exactly one")
    return signatures[0]


def _read_signature_dictionary(signature: EmbeddedPdfSignature, findings: _Findings) -> bool:
    """Read the signing time; whether the signature's format is one a seal has."""
    subfilter = signature.sig_object.get("/SubFilter")
    known_format = str(subfilter) in _ACCEPTED_SUBFILTERS
    if not known_format:
        findings.problem(f"the signature has the unsupported format {subfilter}")
    try:
        signing_time = signature.self_reported_timestamp
    except Exception as exc:
        findings.problem(f"the signing time cannot be read: {_describe(exc)}")
        return known_format
    if signing_time is None:
        findings.problem("the signature carries no signing time")
    else:
        findings.signing_time = _aware(signing_time).astimezone(dt.UTC)
    return known_format


def _signer_certificate(signature: EmbeddedPdfSignature, findings: _Findings) -> asn1_x509.Certificate | None:
    try:
        certificate: asn1_x509.Certificate = signature.signer_cert
        findings.signer = x509.load_der_x509_certificate(certificate.dump()).subject.rfc4514_string()
    except Exception as exc:
        findings.problem(f"the signer's certificate cannot be found in the signature: {_describe(exc)}")
        return None
    return certificate


def _check_integrity(
    signature: EmbeddedPdfSignature, document: bytes, certificate: asn1_x509.Certificate | None, findings: _Findings
) -> None:
    container_problem = _container_gap_problem(signature, document)
    if container_problem:
        findings.problem(container_problem)
    structure_problem = _container_structure_problem(signature.pkcs7_content)
    if structure_problem:
        findings.problem(structure_problem)
    if certificate is None:
        return  # reported already; without the certificate neither digest nor signature can be judged
    try:
        digest = signature.compute_digest()
        digest_matches, signature_verifies = validate_sig_integrity(
            signature.signer_info, certificate, expected_content_type="data", actual_digest=digest
        )
    except Exception as exc:
        findings.problem(f"the signature cannot be verified: {_describe(exc)}")
        return
    if not digest_matches:
        findings.problem("the document was changed after it was sealed: its bytes no longer match the sealed digest")
    if not signature_verifies:
        findings.problem("the signature does not verify with the signer's certificate")
    findings.intact = digest_matches and container_problem is None
    findings.valid = signature_verifies and structure_problem is None


def _container_gap_problem(signature: EmbeddedPdfSignature, document: bytes) -> str | None:
    """The one gap in /ByteRange must hold the hex of the container and nothing else, and the
    container must be the DER followed by zero padding only."""
    byte_range = [int(v) for v in signature.byte_range]
    raw = signature.pkcs7_content
    if len(byte_range) != 4 or byte_range[0] != 0:
        return "the signature's byte range is not the standard one"
    _, first_length, second_start, second_length = byte_range
    gap = document[first_length:second_start]
    if gap not in (b"<" + raw.hex().encode() + b">", b"<" + raw.hex().upper().encode() + b">"):
        return "the signature container was altered: its gap holds more than the container's hex digits"
    if second_start + second_length > len(document):
        return "the signature's byte range reaches past the end of the file"
    try:
        _, _, _, header, contents, trailer = parser.parse(raw)
    except Exception as exc:
        return f"the signature container is not DER: {_describe(exc)}"
    padding = raw[len(header) + len(contents) + len(trailer) :]
    if padding.strip(b"\x00"):
        return "the signature container was altered: non-zero bytes follow it"
    return None


def _container_structure_problem(raw: bytes) -> str | None:
    """The shape a seal's CMS has. Parts of a CMS that its signature does not cover must be
    checked one by one, or they could be changed without notice."""
    try:
        _, _, _, header, contents, trailer = parser.parse(raw)
        der = header + contents + trailer
        content_info = cms.ContentInfo.load(der, strict=True)
    except Exception as exc:
        return f"the signature container cannot be parsed: {_describe(exc)}"
    if not _is_strict_der(der):
        return "the signature container is not strict DER"
    if content_info["content_type"].native != "signed_data":
        return "the signature container is not CMS signed data"
    signed_data = content_info["content"]
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        return "the signature container must hold exactly one signer"
    signer_info = signer_infos[0]
    # RFC 5652 5.1 and 5.3: version 3 exactly when the signer is named by its key identifier
    expected_version = "v3" if signer_info["sid"].name == "subject_key_identifier" else "v1"
    if signed_data["version"].native != expected_version or signer_info["version"].native != expected_version:
        return "the signature container has an unexpected version"
    if not _names_exactly(signer_info["sid"], signed_data["certificates"]):
        return "the signer identifier does not name an embedded certificate exactly"
    digest_algorithms = [a.dump() for a in signed_data["digest_algorithms"]]
    if digest_algorithms != [signer_info["digest_algorithm"].dump()]:
        return "the signature container lists digest algorithms its signer does not use"
    content = signed_data["encap_content_info"]
    if content["content_type"].native != "data" or content["content"].native is not None:
        return "the signature container is not a detached signature of the document"
    if signer_info["unsigned_attrs"].native is not None or signed_data["crls"].native is not None:
        return "the signature container carries unsigned additions"
    signed_attrs = signer_info["signed_attrs"]
    if not signed_attrs:
        return "the signature has no signed attributes"
    binding = get_signing_cert_attr(signed_attrs.untag())
    if binding is None:
        return "the signature does not bind its certificate (no signing-certificate attribute)"
    certificates = signed_data["certificates"]
    for choice in certificates:
        if choice.name != "certificate":
            return "the signature container carries a certificate of an unexpected type"
        if not any(check_ess_certid(choice.chosen, cert_id) for cert_id in binding["certs"]):
            return "the signature container carries a certificate its signature does not bind"
    return None


def _names_exactly(sid: cms.SignerIdentifier, certificates: cms.CertificateSet) -> bool:
    """The signer identifier matches an embedded certificate byte for byte. pyHanko matches names
    the way RFC 5280 compares them (case-insensitively), which would let a changed letter pass."""
    for choice in certificates:
        if choice.name != "certificate":
            continue
        certificate = choice.chosen
        if sid.name == "issuer_and_serial_number":
            tbs = certificate["tbs_certificate"]
            if sid.chosen["issuer"].dump() == tbs["issuer"].dump() and (
                sid.chosen["serial_number"].dump() == tbs["serial_number"].dump()
            ):
                return True
        elif sid.name == "subject_key_identifier" and sid.chosen.native == certificate.key_identifier:
            return True
    return False


def _is_strict_der(data: bytes, depth: int = 0) -> bool:
    """Every constructed value is exactly filled by its children, with definite minimal lengths
    and no end-of-contents markers: a BER reader would otherwise absorb, say, the zero padding
    into the container after a one-byte change of its outer length."""
    position = 0
    while position < len(data):
        tag = data[position]
        position += 1
        if tag == 0:
            return False
        if tag & 0x1F == 0x1F:  # a multi-byte tag number
            while position < len(data) and data[position] & 0x80:
                position += 1
            position += 1
        if position >= len(data):
            return False
        length = data[position]
        position += 1
        if length == 0x80:
            return False
        if length > 0x80:
            count = length & 0x7F
            encoded = data[position : position + count]
            if len(encoded) != count or encoded[0] == 0:
                return False
            length = int.from_bytes(encoded, "big")
            if length < 0x80:
                return False
            position += count
        contents = data[position : position + length]
        if len(contents) != length:
            return False
        if tag & 0x20 and (depth > 32 or not _is_strict_der(contents, depth + 1)):
            return False
        position += length
    return True


def _check_coverage(signature: EmbeddedPdfSignature, *, appended: int, findings: _Findings) -> SignatureCoverageLevel:
    try:
        coverage = signature.evaluate_signature_coverage()
    except Exception as exc:
        findings.problem(f"the extent of the signature cannot be determined: {_describe(exc)}")
        return SignatureCoverageLevel.UNCLEAR
    if coverage == SignatureCoverageLevel.ENTIRE_FILE:
        findings.covers_whole_file = appended == 0
    elif coverage == SignatureCoverageLevel.ENTIRE_REVISION:
        later = signature.reader.total_revisions - 1 - signature.signed_revision
        findings.problem(f"the PDF was changed after it was sealed: {later} revision(s) were added after the seal")
    else:
        findings.problem("the seal does not cover the document it is in (its byte range leaves parts unsigned)")
    return coverage


def _identify_key(
    signature: EmbeddedPdfSignature,
    certificate: asn1_x509.Certificate,
    trusted: Sequence[TrustedKey],
    findings: _Findings,
) -> None:
    signer = x509.load_der_x509_certificate(certificate.dump())
    wanted = _spki(signer)
    matches = [k for k in trusted if _spki(k.certificate) == wanted]
    # the same public key may be certified twice; the identical certificate wins
    matches.sort(key=lambda k: k.certificate != signer)
    if not matches:
        claimed = kid_from_contact_info(_text(signature.sig_object.get("/ContactInfo")))
        claim = f"claims kid={claimed}, " if claimed else ""
        findings.problem(f"the seal was made with a key that is not trusted ({claim}signer {findings.signer})")
        return
    key = findings.key = matches[0]
    when = findings.signing_time
    if when is None:
        return  # already reported
    validity_start = max(key.certificate.not_valid_before_utc, _aware(key.not_before))
    validity_end = key.certificate.not_valid_after_utc
    problems = []
    if when < _to_second(validity_start):
        problems.append(f"the seal is dated {when:%Y-%m-%d %H:%M:%S} UTC, before the key {key.kid} was valid")
    if when > validity_end:
        problems.append(
            f"the seal is dated {when:%Y-%m-%d %H:%M:%S} UTC, after the certificate of key {key.kid} expired"
        )
    if key.retired_at is not None and when > _aware(key.retired_at):
        problems.append(
            f"the seal is dated {when:%Y-%m-%d %H:%M:%S} UTC, after the key {key.kid} was retired "
            f"({_aware(key.retired_at):%Y-%m-%d %H:%M:%S} UTC)"
        )
    findings.problems.extend(problems)
    findings.key_valid_at_signing = not problems


def _signed_attachment(reader: PdfFileReader, revision: int, name: str) -> bytes | None:
    """The embedded file ``name`` as the signed revision has it (later revisions cannot change it)."""
    root = reader.get_historical_resolver(revision).root
    file_spec = _name_tree_lookup(_resolved(_resolved(root, "/Names"), "/EmbeddedFiles"), name)
    embedded = _resolved(file_spec, "/EF")
    stream = _resolved(embedded, "/UF") or _resolved(embedded, "/F")
    if not isinstance(stream, generic.StreamObject):
        return None
    data: bytes = stream.data
    return data


def _resolved(container: generic.PdfObject | None, key: str) -> generic.PdfObject | None:
    """``container[key]``, dereferenced, or None where either is missing or not a dictionary."""
    if not isinstance(container, generic.DictionaryObject):
        return None
    value = container.get(key)
    return value.get_object() if value is not None else None


def _name_tree_lookup(tree: generic.PdfObject | None, name: str) -> generic.PdfObject | None:
    pending = [tree] if tree is not None else []
    visited = 0
    while pending and visited < _NAME_TREE_LIMIT:
        node = pending.pop().get_object()  # type: ignore[no-untyped-call]
        visited += 1
        names = _resolved(node, "/Names")
        if isinstance(names, generic.ArrayObject):
            for index in range(0, len(names) - 1, 2):
                if _text(names[index]) == name:
                    value: generic.PdfObject = names[index + 1].get_object()
                    return value
        kids = _resolved(node, "/Kids")
        if isinstance(kids, generic.ArrayObject):
            pending.extend(kids)
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return None


def _spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _to_second(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=0)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
