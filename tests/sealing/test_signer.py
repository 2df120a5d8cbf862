"""The PAdES sealer: one incremental revision that embeds the letter's JSON and signs everything."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from io import BytesIO

import pytest
import weasyprint
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import check_ess_certid
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from issuer.sealing.check import TrustedKey, check_pdf
from issuer.sealing.keys import generate_material
from issuer.sealing.signer import PadesSealer, Sealer, SealingError, SigningKey, kid_from_contact_info

SIGNED_AT = dt.datetime(2026, 9, 15, 4, 30, 12, tzinfo=dt.UTC)
LETTER_JSON = b'{"number": "L-2026-000123", "vins": ["LGXC74C43S0123456"]}'
MAKER = "Test Motor Co., Ltd."


def _seal(pdf: bytes, key: SigningKey, *, attachment: bytes = LETTER_JSON, at: dt.datetime = SIGNED_AT) -> bytes:
    return PadesSealer().seal(
        pdf,
        key=key,
        attachment=attachment,
        attachment_name="letter.json",
        signer_name=MAKER,
        reason="After-sales Maintenance Service Confirmation Letter L-2026-000123",
        location="CN",
        signing_time=at,
    )


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def unsigned_pdf() -> bytes:
    return weasyprint.HTML(string="<h1>Confirmation letter</h1><p>LGXC74C43S0123456</p>").write_pdf()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    material = generate_material(name=MAKER, uscc="91110000100000000X", now=SIGNED_AT - dt.timedelta(days=1))
    return SigningKey(kid="TMC-0123456789abcdef", private_key=material.private_key, certificate=material.certificate)


@pytest.fixture(scope="module")
def sealed(unsigned_pdf: bytes, key: SigningKey) -> bytes:
    return _seal(unsigned_pdf, key)


def _signature(pdf: bytes):  # type: ignore[no-untyped-def]
    reader = PdfFileReader(BytesIO(pdf))
    (signature,) = reader.embedded_signatures
    return reader, signature


def test_pades_sealer_is_a_sealer_named_pades():
    sealer: Sealer = PadesSealer()
    assert sealer.name == "pades"


def test_sealed_pdf_validates_in_pyhanko_trusting_only_the_seal_certificate(sealed, key):
    _, signature = _signature(sealed)
    context = ValidationContext(trust_roots=[_asn1(key.certificate)], moment=SIGNED_AT)

    status = validate_pdf_signature(signature, context)

    assert status.intact
    assert status.valid
    assert status.trusted
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.bottom_line
    assert status.md_algorithm == "sha256"
    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"


def test_sealed_pdf_is_not_trusted_by_pyhanko_with_another_certificate(sealed):
    stranger = generate_material(name=MAKER, uscc="91110000100000000X", now=SIGNED_AT - dt.timedelta(days=1))
    _, signature = _signature(sealed)

    status = validate_pdf_signature(
        signature, ValidationContext(trust_roots=[_asn1(stranger.certificate)], moment=SIGNED_AT)
    )

    assert status.intact
    assert not status.trusted
    assert not status.bottom_line


def test_signature_is_pades_baseline_b_with_the_signing_certificate_bound_and_no_cms_signing_time(sealed, key):
    _, signature = _signature(sealed)
    attributes = {a["type"].native: a for a in signature.signer_info["signed_attrs"]}

    assert set(attributes) == {"content_type", "message_digest", "signing_certificate_v2"}
    (binding,) = attributes["signing_certificate_v2"]["values"]
    assert check_ess_certid(_asn1(key.certificate), binding["certs"][0])
    assert signature.signer_info["digest_algorithm"]["algorithm"].native == "sha256"


def test_signature_dictionary_names_the_key_the_signer_the_reason_and_the_signing_time(sealed, key):
    _, signature = _signature(sealed)
    dictionary = signature.sig_object

    assert kid_from_contact_info(dictionary["/ContactInfo"]) == key.kid
    assert dictionary["/Name"] == MAKER
    assert dictionary["/Reason"].endswith("L-2026-000123")
    assert dictionary["/Location"] == "CN"
    assert signature.self_reported_timestamp == SIGNED_AT


def test_seal_appends_one_revision_and_keeps_the_rendered_bytes_untouched(unsigned_pdf, sealed):
    before = PdfFileReader(BytesIO(unsigned_pdf)).total_revisions

    reader, signature = _signature(sealed)

    assert sealed.startswith(unsigned_pdf)
    assert reader.total_revisions == before + 1
    assert signature.signed_revision == reader.total_revisions - 1


def test_attachment_is_an_associated_json_file_added_in_the_signed_revision(sealed):
    reader, signature = _signature(sealed)
    associated = reader.root["/AF"]
    file_spec_ref = associated.raw_get(0)
    file_spec = file_spec_ref.get_object()
    names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    stream_ref = file_spec["/EF"].raw_get("/F")

    assert len(associated) == 1
    assert file_spec["/AFRelationship"] == "/Data"
    assert len(names) == 2
    assert names[0] == "letter.json"
    assert names.raw_get(1) == file_spec_ref
    assert stream_ref.get_object().data == LETTER_JSON
    assert stream_ref.get_object()["/Subtype"] == "/application/json"
    assert reader.xrefs.get_introducing_revision(stream_ref.reference) == signature.signed_revision
    assert reader.xrefs.get_introducing_revision(file_spec_ref.reference) == signature.signed_revision


@pytest.mark.skipif(shutil.which("qpdf") is None, reason="qpdf is not installed")
def test_sealed_pdf_passes_qpdf_check(sealed, tmp_path):
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)

    result = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No syntax or stream encoding errors" in result.stdout


def _ca_issued_rsa_key() -> tuple[SigningKey, x509.Certificate]:
    """An RSA seal key certified by a CA, as an imported key would be."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Seal CA")])
    start = SIGNED_AT - dt.timedelta(days=30)
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, MAKER)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=365))
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return SigningKey(kid="TMC-rsa", private_key=key, certificate=leaf, chain=(ca,)), ca


def test_rsa_key_with_a_ca_chain_seals_and_the_signature_binds_every_embedded_certificate(unsigned_pdf):
    key, ca = _ca_issued_rsa_key()

    sealed = _seal(unsigned_pdf, key)

    _, signature = _signature(sealed)
    embedded = [c.chosen for c in signature.signed_data["certificates"]]
    (binding,) = next(a for a in signature.signer_info["signed_attrs"] if a["type"].native == "signing_certificate_v2")[
        "values"
    ]
    assert len(embedded) == 2
    assert all(any(check_ess_certid(c, cert_id) for cert_id in binding["certs"]) for c in embedded)
    status = validate_pdf_signature(signature, ValidationContext(trust_roots=[_asn1(ca)], moment=SIGNED_AT))
    assert status.bottom_line
    trusted = TrustedKey(kid=key.kid, manufacturer="TMC", certificate=key.certificate,
                         not_before=key.certificate.not_valid_before_utc, retired_at=None)
    assert check_pdf(sealed, trusted=[trusted]).authentic


def test_seal_is_refused_when_the_signing_time_is_naive(unsigned_pdf, key):
    with pytest.raises(SealingError, match="timezone-aware"):
        _seal(unsigned_pdf, key, at=SIGNED_AT.replace(tzinfo=None))


def test_seal_is_refused_when_the_certificate_does_not_belong_to_the_key(unsigned_pdf, key):
    other = generate_material(name=MAKER, uscc="91110000100000000X", now=SIGNED_AT)
    mismatched = SigningKey(kid=key.kid, private_key=other.private_key, certificate=key.certificate)

    with pytest.raises(SealingError, match="does not belong"):
        _seal(unsigned_pdf, mismatched)


@pytest.mark.parametrize("pdf", [b"", b"not a pdf", b"%PDF-1.7\n"])
def test_seal_is_refused_when_the_pdf_cannot_be_read(pdf, key):
    with pytest.raises(SealingError, match="cannot be read"):
        _seal(pdf, key)


def test_seal_is_refused_when_the_pdf_is_sealed_already(sealed, key):
    with pytest.raises(SealingError, match="cannot be sealed"):
        _seal(sealed, key)
